"""Calls over the WebSocket audio API, end to end on loopback: a real uvicorn serving the agent,
real websockets clients that stream, play back and acknowledge at real time, scripted providers.

Every caller action is timed on what the agent does (its greeting ended, its answer has been
audible for half a second), never on the clock."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness import fake_agent, fake_registry
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import CallReport, Cue, WsCaller, greeting_heard

pytestmark = pytest.mark.anyio

LONG_REPLY = (
    "Let me tell you about the weather, which is long. Tomorrow it will be sunny in the morning, "
    "cloudy around noon, and rainy by the evening, so take an umbrella with you when you go out."
)


def ws_agent(**overrides: Any) -> tuple[Any, Any]:
    registry = fake_registry()
    return registry, fake_agent(registry, transport={"provider": "websocket"}, **overrides)


def resample(pcm: bytes, rate: int) -> bytes:
    """The test's own stand-in speech at another rate (noise stays noise)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    picked = np.linspace(0, len(samples) - 1, int(len(samples) * rate / 16_000)).astype(int)
    return samples[picked].tobytes()


def question(rate: int = 16_000) -> list[Cue]:
    pcm = speech_like(0.8) + silence(0.1)
    return [Cue(pcm if rate == 16_000 else resample(pcm, rate), when=greeting_heard)]


def seconds(report: CallReport, rate: int) -> float:
    return len(report.heard()) / (2 * rate)


async def test_a_call_gets_the_reply_audio_its_events_and_a_clean_hang_up() -> None:
    registry, agent = ws_agent()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), question()).run()
    assert report.started is not None and report.started["format"]["sample_rate"] == 16_000
    greeting, reply = report.turns_ended()
    assert greeting["kind"] == "greeting" and greeting["outcome"] == "completed"
    assert report.of_type("transcript") == [{"type": "transcript", "turn": 1, "text": "what time is it"}]
    assert reply["outcome"] == "completed" and reply["heard_text"] == "It is noon, more or less."
    assert reply["mouth_to_ear_ms"] is not None and reply["mouth_to_ear_ms"] > 0
    # Both lines were played: the tone TTS speaks 0.06 s per character.
    spoken = len("Hello there.") + len("It is noon, more or less.")
    assert seconds(report, 16_000) == pytest.approx(spoken * 0.06, abs=0.15)
    assert report.acknowledged > 0 and report.clears == 0
    assert report.hangup == {"type": "hangup", "reason": "caller hung up"} and report.close_code == 1000
    assert [r.ended_because for r in server.results] == ["caller hung up"]


@pytest.mark.parametrize("rate", [8_000, 48_000])
async def test_a_client_at_another_rate_is_resampled_both_ways(rate: int) -> None:
    registry, agent = ws_agent()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), question(rate), sample_rate=rate).run()
    assert report.started is not None and report.started["format"]["sample_rate"] == rate
    assert [t["outcome"] for t in report.turns_ended()] == ["completed", "completed"]
    spoken = len("Hello there.") + len("It is noon, more or less.")
    assert seconds(report, rate) == pytest.approx(spoken * 0.06, abs=0.15)
    heard = np.frombuffer(report.heard(), dtype="<i2")
    assert np.abs(heard).max() > 0.2 * 32767  # the tone came through, not silence


def interruption() -> tuple[Any, Any, list[Cue]]:
    """An agent with a long answer, and a caller who asks, then cuts in 1.5 s into the answer."""
    registry, agent = ws_agent(
        stt=[{"provider": "scripted-stt", "lines": ["tell me everything", "stop please"]}],
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY, "Sure."]}],
    )
    cues = [
        Cue(speech_like(0.8) + silence(0.1), when=greeting_heard),
        Cue(speech_like(1.0, seed=1) + silence(0.1), after_agent_audio=1.5),
    ]
    return registry, agent, cues


async def test_barge_in_sends_clear_and_the_context_keeps_only_what_was_heard() -> None:
    registry, agent, cues = interruption()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), cues).run()
        llm = next(p for p in server.pool._instances.values() if p.name == "scripted-llm")
    interrupted, answer = report.turns_ended("reply")
    assert report.clears == 1
    assert report.of_type("pause") == []  # this client did not say it can pause
    assert interrupted["outcome"] == "interrupted"
    heard = interrupted["heard_text"]
    assert heard and heard != interrupted["agent_text"]
    assert LONG_REPLY.startswith(heard.rstrip("…").rsplit(" ", 1)[0])
    # What was heard is about what was played: 1.5 s of a tone at 0.06 s a character, plus the
    # barge-in's own 0.35 s, give or take a chunk and the acknowledgement's way back.
    played = len(heard.rstrip("…")) * 0.06
    assert 1.5 <= played + 0.3 and played <= 1.5 + 0.35 + 1.0
    # The second request's context holds only the heard words, marked as cut off.
    assistant = [m for m in llm.requests[-1] if m.role == "assistant"]
    assert assistant[0].content.startswith(heard.rstrip("…")) and assistant[0].interrupted
    assert LONG_REPLY not in assistant[0].content
    assert answer["outcome"] == "completed" and answer["heard_text"] == "Sure."


async def test_a_client_that_pauses_goes_quiet_at_the_interruption_and_hears_nothing_more() -> None:
    registry, agent, cues = interruption()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), cues, pauses=True).run()
    interrupted, answer = report.turns_ended("reply")
    assert interrupted["outcome"] == "interrupted" and answer["heard_text"] == "Sure."
    kinds = [event["type"] for _, event in report.events if event["type"] in ("pause", "clear")]
    assert kinds == ["pause", "clear"]  # held at the onset, dropped once it proved an interruption
    (paused, resumed), = report.pauses
    cleared = next(t for t, event in report.events if event["type"] == "clear")
    assert resumed is None
    # Nothing of the agent played between the pause and the clear (the barge-in's 0.35 s).
    assert not any(s.start < cleared and s.start + len(s.pcm) / 32_000 > paused + 0.001 for s in report.segments)


MEDIUM_REPLY = "Tomorrow it will be sunny in the morning and rainy by the evening."


async def test_a_cough_holds_a_pausing_client_for_a_moment_and_the_reply_plays_on_in_full() -> None:
    registry, agent = ws_agent(
        stt=[{"provider": "scripted-stt", "lines": ["tell me everything"]}],
        llm=[{"provider": "scripted-llm", "replies": [MEDIUM_REPLY]}],
    )
    cues = [
        Cue(speech_like(0.8) + silence(0.1), when=greeting_heard),
        Cue(speech_like(0.15, seed=2), after_agent_audio=1.0),
    ]
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), cues, pauses=True).run()
    (paused, resumed), = report.pauses
    assert resumed is not None and resumed - paused < 1.0
    assert report.clears == 0
    reply = report.turns_ended("reply")[0]
    assert reply["outcome"] == "completed" and reply["heard_text"] == MEDIUM_REPLY
    # Every sample of both lines was played: none lost to the pause.
    spoken = len("Hello there.") + len(MEDIUM_REPLY)
    assert seconds(report, 16_000) == pytest.approx(spoken * 0.06, abs=0.15)


async def test_a_client_that_does_not_acknowledge_is_taken_as_hearing_in_real_time() -> None:
    registry, agent = ws_agent()
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), question(), acknowledges_marks=False).run()
    assert report.acknowledged == 0
    reply = report.turns_ended("reply")[0]
    assert reply["outcome"] == "completed" and reply["heard_text"] == "It is noon, more or less."
    assert reply["mouth_to_ear_ms"] is not None


async def test_the_agent_hangs_up_and_says_why() -> None:
    registry, agent = ws_agent(
        prompt={"system": "You are a test.", "greeting": {"text": "Hello there."}},
        unhappy_paths={"silence": {"reprompt_after": 0.5, "reprompts": [], "goodbye": "Bye now."}},
    )
    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), [], hang_up_when=None).run()
    assert [t["kind"] for t in report.turns_ended()] == ["greeting", "goodbye"]
    assert report.hangup is not None and report.close_code == 1000
    assert report.hangup["reason"] == server.results[0].ended_because
