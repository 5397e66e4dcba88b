"""Helpers of the Twilio tests: an agent of scripted providers on the twilio transport, served
by the real serving stack, and what the tests ask of the server."""

from __future__ import annotations

from typing import Any

import anyio

from harness import fake_agent, fake_registry
from voiceflow.config.compose import AgentConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import ProviderKind
from voiceflow.runtime.session import CallResult
from voiceflow.testing.fake_twilio import FakeTwilio
from voiceflow.testing.served import Served
from voiceflow_twilio import TwilioTransport


def phone_agent(twilio: FakeTwilio | None, transport: dict[str, Any] | None = None,
                **overrides: Any) -> tuple[PluginRegistry, AgentConfig]:
    """The harness's scripted agent, answering the phone; ``transport`` adds settings."""
    registry = fake_registry()
    settings: dict[str, Any] = {"provider": "twilio"}
    if twilio is not None:
        settings |= {"auth_token": twilio.auth_token, "api_base": twilio.api_base}
    settings |= transport or {}
    overrides.setdefault("name", "phone")
    return registry, fake_agent(registry, transport=settings, **overrides)


def webhook(server: Served, agent: AgentConfig) -> str:
    return f"{server.base_url}/agents/{agent.name}/twilio/voice"


async def transport_of(server: Served, agent: AgentConfig) -> TwilioTransport:
    transport = await server.pool.get(ProviderKind.TRANSPORT, agent.transport)
    assert isinstance(transport, TwilioTransport)
    return transport


async def finished_calls(server: Served, count: int = 1, timeout: float = 10.0) -> list[CallResult]:
    """The results of the first ``count`` calls, once they have ended on the server's side."""
    with anyio.fail_after(timeout):
        while len(server.results) < count:
            await anyio.sleep(0.02)
    return server.results
