"""Running whole calls in tests: an agent, a caller recording, the file transport, a clock."""

from __future__ import annotations

from typing import Any

import yaml

from voiceflow.clock import open_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.config.loader import parse_agent
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import CallResult, Session
from voiceflow.testing import fakes
from voiceflow_file import FileCall, FileTransportConfig


def fake_registry() -> PluginRegistry:
    return PluginRegistry(plugins=[fakes])


def fake_agent(registry: PluginRegistry, **overrides: Any) -> AgentConfig:
    """An agent of scripted providers; ``overrides`` replace top-level blocks of the YAML."""
    data: dict[str, Any] = {
        "name": "test-agent",
        "prompt": {"system": "You are a test.", "greeting": {"text": "Hello there."}},
        "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}],
        "stt": [{"provider": "scripted-stt", "lines": ["what time is it"]}],
        "llm": [{"provider": "scripted-llm", "replies": ["It is noon, more or less."]}],
        "tts": [{"provider": "tone"}],
    }
    data.update(overrides)
    return parse_agent(yaml.safe_dump(data), "test-agent.yaml", registry)


async def run_call(
    agent: AgentConfig,
    registry: PluginRegistry,
    caller_pcm: bytes,
    *,
    pool: ProviderPool | None = None,
    clock: str = "virtual",
    **transport: Any,
) -> tuple[CallResult, FileCall, ProviderPool]:
    pool = pool or ProviderPool(registry)
    await prepare(agent, pool)
    call = FileCall(FileTransportConfig(**transport), caller_pcm)
    try:
        async with open_clock(clock) as session_clock:
            result = await Session(agent, pool, call, session_clock).run()
    finally:
        call.close()
    return result, call, pool
