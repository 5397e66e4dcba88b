"""Whole calls with Deepgram recognising the caller and Aura speaking, against the fake Deepgram
server, on the virtual clock (file transport): the turn is answered from Deepgram's transcript,
and a Deepgram entry that fails (refused key, a stream that keeps dropping) hands over to the next
entry of its chain without costing the call.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from harness import fake_agent, fake_registry, run_call
from voiceflow.runtime.session import CallResult
from voiceflow.testing.fake_deepgram import FakeDeepgram, Fault
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

KEY = "dg-test-SECRET0123456789abcdefXYZ"
FAST = {"connect": 1.0, "first_byte": 1.0, "idle": 1.0, "prepare": 10.0}
ANSWER = "It is noon, more or less."
CALLER = silence(0.3) + speech_like(1.0) + silence(3.0)
TWO_TURNS = CALLER + speech_like(1.0, seed=3) + silence(4.0)


def stt_entry(fake: FakeDeepgram, **fields: Any) -> dict[str, Any]:
    return {"provider": "deepgram", "api_key": KEY, "websocket_url": fake.websocket_url, "timeouts": FAST, **fields}


def aura_entry(fake: FakeDeepgram, **fields: Any) -> dict[str, Any]:
    return {"provider": "deepgram-aura", "api_key": KEY, "websocket_url": fake.websocket_url,
            "base_url": fake.base_url, "timeouts": FAST, **fields}


async def call(caller: bytes = CALLER, **blocks: Any) -> tuple[CallResult, Any]:
    reg = fake_registry()  # the built-ins (deepgram among them) and the scripted providers
    agent = fake_agent(reg, **blocks)
    with anyio.fail_after(60):  # "never hangs": generous for a busy 2-core machine
        result, transport, pool = await run_call(agent, reg, caller)
    await pool.aclose()
    return result, transport


def replies(result: CallResult) -> list[Any]:
    return [t for t in result.timeline.turns if t.kind == "reply"]


async def test_a_whole_call_through_deepgram_and_aura() -> None:
    async with FakeDeepgram(utterances=["what time is it"], api_key=KEY) as fake:
        result, _ = await call(stt=[stt_entry(fake)], tts=[aura_entry(fake)])
    turns = replies(result)
    assert turns and turns[0].outcome == "completed", result.timeline.as_dict()
    assert turns[0].user_text == "what time is it" and turns[0].heard_text == ANSWER
    session = fake.listen_sessions[0]
    assert "Finalize" in session.controls and session.controls[-1] == "CloseStream"
    assert session.closed_by == "server" and session.audio_after_close_stream == 0
    spoken = [r for r in fake.speak_requests if r.transport == "websocket"]
    assert len(spoken) == 1, "one Aura socket for the greeting and every clause of the reply"
    assert spoken[0].texts[0] == "Hello there." and " ".join(spoken[0].texts[1:]) == ANSWER
    marks = turns[0].marks
    assert marks["tts_first_audio"] >= marks["tts_request"] and marks["stt_final"] >= marks["stt_finalize"]


async def test_the_rest_transport_in_a_whole_call() -> None:
    async with FakeDeepgram(utterances=["what time is it"], api_key=KEY) as fake:
        result, _ = await call(stt=[stt_entry(fake)], tts=[aura_entry(fake, transport="rest")])
    turns = replies(result)
    assert turns and turns[0].heard_text == ANSWER, result.timeline.as_dict()
    assert {r.transport for r in fake.speak_requests} == {"rest"}


async def test_a_single_drop_mid_phrase_costs_nothing() -> None:
    async with FakeDeepgram(utterances=["what time is it"], api_key=KEY) as fake:
        fake.fail_next(Fault("disconnect", after=2))  # SpeechStarted and one interim, then gone
        result, _ = await call(stt=[stt_entry(fake)])
    turns = replies(result)
    assert turns and turns[0].outcome == "completed" and not turns[0].failure, result.timeline.as_dict()
    assert turns[0].user_text == "what time is it" and turns[0].heard_text == ANSWER
    first, second = fake.listen_sessions
    assert first.closed_by == "fault" and second.closed_by == "server"
    # The reopened socket heard the phrase again from its start: the audio no final had covered.
    assert bytes(second.audio).startswith(bytes(first.audio))


async def test_a_refused_key_falls_back_to_the_next_recogniser_and_voice() -> None:
    async with FakeDeepgram(utterances=["never heard"], api_key=KEY) as fake:
        result, _ = await call(
            stt=[stt_entry(fake, api_key="dg-revoked-0000000000"),
                 {"provider": "scripted-stt", "lines": ["what time is it"]}],
            tts=[aura_entry(fake, api_key="dg-revoked-0000000000"), {"provider": "tone"}],
        )
    turns = replies(result)
    assert turns and turns[0].outcome == "completed", result.timeline.as_dict()
    assert turns[0].user_text == "what time is it" and turns[0].heard_text == ANSWER
    assert any("the API key was refused (401)" in f for f in turns[0].fallbacks), turns[0].fallbacks
    assert not any("dg-revoked" in f for t in result.timeline.turns for f in t.fallbacks)
    assert all(not s.accepted for s in fake.listen_sessions + fake.speak_requests)


async def test_a_stream_that_keeps_dropping_hands_over_to_the_next_recogniser() -> None:
    async with FakeDeepgram(utterances=["lost words"], api_key=KEY, fault=Fault("disconnect", after=2)) as fake:
        result, _ = await call(
            TWO_TURNS,
            stt=[stt_entry(fake, max_reconnects=1),
                 {"provider": "scripted-stt", "lines": ["what time is it"] * 2}],
        )
    timeline = result.timeline.as_dict()
    assert result.ended_because == "end of input", timeline
    # The turn in flight when the stream failed gets the apology, and the failure is named...
    failed = [t for t in result.timeline.turns if t.failure]
    assert len(failed) == 1 and failed[0].kind == "apology", timeline
    # (Either the stream's own error, or, when the finalize came during the recogniser's back-off
    # after a stream that failed young, "no speech recogniser is available".)
    assert failed[0].failure is not None and failed[0].failure.startswith("stt/deepgram: "), timeline
    # ...after one reopened socket dropped too; the next turn is heard by the next recogniser.
    assert [s.closed_by for s in fake.listen_sessions] == ["fault", "fault"]
    answered = [t for t in replies(result) if t.outcome == "completed"]
    assert [t.user_text for t in answered] == ["what time is it"], timeline
