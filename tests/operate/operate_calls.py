"""Shared by the operate tests: an agent served over the WebSocket transport with scripted
providers, callers that ask a question or barge in, and a Prometheus scrape of the server."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import anyio.to_thread
from prometheus_client.parser import text_string_to_metric_families

from harness import fake_agent, fake_registry
from voiceflow.config.compose import AgentConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.ws_caller import Cue, greeting_heard

LONG_REPLY = (
    "Let me tell you about the weather, which is long. Tomorrow it will be sunny in the morning, "
    "cloudy around noon, and rainy by the evening, so take an umbrella with you when you go out."
)
FAILING_THEN_WORKING_LLM = [
    {"provider": "scripted-llm", "fail": True, "circuit": {"failures": 1, "reset_after": 600}},
    {"provider": "scripted-llm", "replies": [LONG_REPLY, "Sure."]},
]
"""A primary that always fails (its circuit opens at once) and a fallback that answers."""


def ws_agent(**overrides: Any) -> tuple[PluginRegistry, AgentConfig]:
    registry = fake_registry()
    settings: dict[str, Any] = {
        "transport": {"provider": "websocket"},
        "stt": [{"provider": "scripted-stt", "lines": ["tell me everything", "stop please"] * 10}],
        "llm": FAILING_THEN_WORKING_LLM,
    }
    return registry, fake_agent(registry, **(settings | overrides))


def question() -> list[Cue]:
    """Ask once the greeting is over; the reply is heard to its end."""
    return [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]


def barge_in() -> list[Cue]:
    """Ask, interrupt the long answer 1.5 s into it, and hear the short one."""
    return [
        Cue(speech_like(0.8) + silence(0.1), when=greeting_heard),
        Cue(speech_like(1.0, seed=1) + silence(0.1), after_agent_audio=1.5),
    ]


def fetch(url: str, token: str | None = None) -> tuple[int, str, str]:
    """GET ``url``: status, content type and body text."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("content-type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("content-type", ""), exc.read().decode()


class Scrape:
    """One scrape of ``/metrics``, parsed with the client library's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.samples)


async def scrape(base_url: str, token: str | None = None) -> Scrape:
    status, content_type, body = await anyio.to_thread.run_sync(fetch, base_url + "/metrics", token)
    assert status == 200, body
    assert content_type.startswith("text/plain"), content_type
    return Scrape(body)
