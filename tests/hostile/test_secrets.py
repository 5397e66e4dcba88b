"""Secrets: every key is its own client, and no key ever reaches a log, a timeline or a message.

A "leaky" LLM provider stands in for a careless SDK: its errors quote the key raw, URL-encoded,
in a bearer header and in HTTP basic auth, the forms real SDK errors and URLs carry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal
from urllib.parse import quote

import pytest
import structlog
import yaml
from pydantic import SecretStr

from harness import run_call
from voiceflow.config.base import ProviderConfig
from voiceflow.config.loader import parse_agent
from voiceflow.frames import Message
from voiceflow.logging import configure_logging
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import LLMProvider, ProviderKind, ProviderUnavailable
from voiceflow.redaction import Redactor, using_redactor
from voiceflow.runtime.pool import ProviderPool
from voiceflow.testing import fakes
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

GOOD, BAD, OTHER = "sk-live-GOOD0123456789abcdef", "sk-live-BAD/+=0123456789xyz", "sk-live-OTHER9876543210zz"


def leak(key: str) -> str:
    basic = base64.b64encode(f"user:{key}".encode()).decode()
    return (f"401 Unauthorized: key {key!r} rejected (Authorization: Bearer {key}; Basic {basic}); "
            f"see https://api.example/v1/chat?api_key={quote(key, safe='')}")


class LeakyConfig(ProviderConfig):
    provider: Literal["leaky"] = "leaky"
    api_key: SecretStr
    refuse: bool = False


class LeakyLLM(LLMProvider[LeakyConfig]):
    """An LLM whose errors quote its key, as careless SDKs do."""

    name = "leaky"
    config_model = LeakyConfig
    used_keys: list[str] = []

    async def prepare(self) -> None:
        if self.config.refuse:
            raise ProviderUnavailable(leak(self.config.api_key.get_secret_value()))

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        key = self.config.api_key.get_secret_value()
        LeakyLLM.used_keys.append(key)
        if key != GOOD:
            raise RuntimeError(leak(key))
        yield "Fine, thanks."


class _Plugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(LeakyLLM)


def registry() -> PluginRegistry:
    return PluginRegistry(plugins=[fakes, _Plugin()])


def agent(reg: PluginRegistry, llm: list[dict[str, Any]], name: str = "secretive") -> Any:
    data = {
        "name": name,
        "prompt": {"system": "Be brief."},
        "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}],
        "stt": [{"provider": "scripted-stt", "lines": ["how are you"]}],
        "llm": llm,
        "tts": [{"provider": "tone"}],
    }
    return parse_agent(yaml.safe_dump(data), f"{name}.yaml", reg)


CALLER = silence(0.3) + speech_like(0.8) + silence(3.0)


def assert_no_secret(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text
        assert quote(key, safe="") not in text
        assert base64.b64encode(f"user:{key}".encode()).decode()[8:-4] not in text


async def test_configs_that_differ_only_in_their_key_are_separate_clients() -> None:
    reg = registry()
    pool = ProviderPool(reg)
    first = agent(reg, [{"provider": "leaky", "api_key": GOOD}]).llm[0]
    second = agent(reg, [{"provider": "leaky", "api_key": OTHER}]).llm[0]
    assert first.model_dump_json() == second.model_dump_json()  # the dump masks keys: not an identity
    a, b = await pool.get(ProviderKind.LLM, first), await pool.get(ProviderKind.LLM, second)
    assert a is not b
    assert a.config.api_key.get_secret_value() == GOOD and b.config.api_key.get_secret_value() == OTHER
    assert await pool.get(ProviderKind.LLM, first) is a


async def test_a_backup_key_is_really_used_and_no_key_reaches_logs_or_timeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg = registry()
    cfg = agent(reg, [{"provider": "leaky", "api_key": BAD}, {"provider": "leaky", "api_key": GOOD}])
    LeakyLLM.used_keys = []
    configure_logging("json", "debug")
    try:  # no redactor set up by the test: a session masks its agent's secrets by itself
        result, _, _ = await run_call(cfg, reg, CALLER, start="immediately", lead_in=0)
    finally:
        structlog.reset_defaults()
    assert LeakyLLM.used_keys[:2] == [BAD, GOOD]  # the failing key, then the backup
    reply = result.timeline.turns[0]
    assert reply.heard_text == "Fine, thanks." and reply.fallbacks
    assert "[redacted]" in reply.fallbacks[0]
    logs = capsys.readouterr().err
    assert "provider failed, falling back" in logs
    assert_no_secret(json.dumps(result.timeline.as_dict()) + logs, BAD, GOOD)


async def test_a_key_in_a_prepare_failure_is_masked_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    reg = registry()
    cfg = agent(reg, [{"provider": "leaky", "api_key": BAD, "refuse": True}])
    configure_logging("console", "info")
    try:
        with using_redactor(Redactor.for_config(cfg)):
            result, _, _ = await run_call(cfg, reg, CALLER, start="immediately", lead_in=0)
    finally:
        structlog.reset_defaults()
    assert result.ended_because.startswith("unavailable: no llm provider could be prepared")
    logs = capsys.readouterr().err
    assert "[redacted]" in result.ended_because and "[redacted]" in logs
    assert_no_secret(result.ended_because + json.dumps(result.timeline.as_dict()) + logs, BAD)


def test_two_agents_side_by_side_each_mask_their_own_keys() -> None:
    reg = registry()
    one = Redactor.for_config(agent(reg, [{"provider": "leaky", "api_key": GOOD}], "one"))
    two = Redactor.for_config(agent(reg, [{"provider": "leaky", "api_key": OTHER}], "two"))
    assert GOOD not in one.redact(leak(GOOD)) and OTHER in one.redact(OTHER)
    assert OTHER not in two.redact(leak(OTHER))
    with using_redactor(one), using_redactor(two):  # a process serving both masks both
        from voiceflow.redaction import redact

        assert_no_secret(redact(leak(GOOD) + leak(OTHER)), GOOD, OTHER)


def test_a_secret_substituted_into_a_longer_value_is_masked_on_its_own() -> None:
    reg = registry()
    text = yaml.safe_dump({
        "name": "env", "prompt": {"system": "x"}, "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}], "stt": [{"provider": "scripted-stt"}], "tts": [{"provider": "tone"}],
        "llm": [{"provider": "leaky", "api_key": "Bearer ${LEAKY_KEY}"}],
    })
    cfg = parse_agent(text, "env.yaml", reg, env={"LEAKY_KEY": GOOD})
    redactor = Redactor.for_config(cfg)
    assert_no_secret(redactor.redact(leak(GOOD)), GOOD)
    assert "Bearer" in redactor.redact("Authorization: Bearer x")  # words of the scheme are kept
