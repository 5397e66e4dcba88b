"""The agent pressing keys at an IVR menu over the WebSocket audio API, end to end on loopback.

A client that asks for keys (``receives_keys``) gets a ``dtmf`` message and no tones; any other
client, including those written before the message existed, hears the keys as keypad tones in
the agent's audio, which a Goertzel receiver finds at the client's own sample rate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness import fake_agent, fake_registry
from voiceflow.testing.dtmf_detector import detected
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import CallReport, Cue, WsCaller, greeting_heard

pytestmark = pytest.mark.anyio

MENU = "Thank you for calling Acme. For sales, press one. For support, press two."


def menu_agent() -> tuple[Any, Any]:
    registry = fake_registry()
    agent = fake_agent(
        registry,
        transport={"provider": "websocket"},
        stt=[{"provider": "scripted-stt", "lines": [MENU]}],
        unhappy_paths={"ivr": {"choose": ["support"]}},
    )
    return registry, agent


def menu_said() -> list[Cue]:
    return [Cue(speech_like(1.5) + silence(0.1), when=greeting_heard)]


def keys_heard(report: CallReport) -> bool:
    return bool(report.turns_ended("keys"))


async def test_a_client_that_takes_keys_gets_a_dtmf_message_and_no_tones() -> None:
    registry, agent = menu_agent()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), menu_said(), receives_keys=True,
                                hang_up_when=lambda r: bool(r.of_type("dtmf"))).run()
    assert report.of_type("dtmf") == [{"type": "dtmf", "keys": "2"}]
    assert detected(report.heard(), 16_000) == ""
    assert [t["kind"] for t in report.turns_ended()] == ["greeting", "keys"]  # the menu was never answered
    [result] = server.results
    [keys] = [turn for turn in result.timeline.turns if turn.kind == "keys"]
    assert keys.ivr is not None and keys.ivr.sent == "out of band" and keys.ivr.chosen == "support"


@pytest.mark.parametrize("rate", [16_000, 8_000])
async def test_any_other_client_hears_the_keys_as_tones(rate: int) -> None:
    registry, agent = menu_agent()
    pcm = np.frombuffer(menu_said()[0].pcm, dtype="<i2")[:: 16_000 // rate].tobytes()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), [Cue(pcm, when=greeting_heard)], sample_rate=rate,
                                hang_up_when=keys_heard).run()
    assert report.of_type("dtmf") == []
    assert [(t["kind"], t["outcome"]) for t in report.turns_ended()] == [("greeting", "completed"),
                                                                         ("keys", "completed")]
    assert detected(report.heard(), rate) == "2"
