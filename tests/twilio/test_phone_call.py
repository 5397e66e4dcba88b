"""Phone calls end to end on loopback: the real serving stack (uvicorn) answers the webhook and
the media stream; a fake phone speaking Twilio's protocol exactly streams a real recording as
μ-law at real time and echoes marks once the audio before them has played; a fake Twilio REST API
takes the hang-up. Every caller action waits on what the agent does, never on the clock."""

from __future__ import annotations

import numpy as np
import pytest
from twilio_harness import finished_calls, phone_agent, transport_of, webhook

from audio_fixtures import goforward
from voiceflow.testing.fake_twilio import ACCOUNT_SID, FakeTwilio
from voiceflow.testing.fakes import speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.twilio_caller import TwilioCaller, agent_audible_for, agent_went_quiet
from voiceflow_twilio import TwilioCall

pytestmark = pytest.mark.anyio

GREETING = "Hello there."
ANSWER = "It is noon, more or less."
LONG_REPLY = (
    "Let me tell you about the weather, which is long. Tomorrow it will be sunny in the morning, "
    "cloudy around noon, and rainy by the evening, so take an umbrella with you when you go out."
)
TONE_LEVEL = 0.3 * 32767
"""The tone TTS speaks a 440 Hz sine at 0.3 of full scale."""


def tone_fit(pcm: bytes, rate: int = 8000, window: float = 0.1) -> tuple[float, float]:
    """Over the windows of ``pcm`` that carry the tone: the median amplitude of the best-fitting
    440 Hz sine, and the median ratio of that sine to what is left over (dB)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    n = int(rate * window)
    amplitudes, snrs = [], []
    for start in range(0, len(samples) - n + 1, n):
        chunk = samples[start : start + n]
        if np.sqrt(np.mean(chunk**2)) < 0.5 * TONE_LEVEL / np.sqrt(2):
            continue  # silence, or the edge of a clause
        t = np.arange(start, start + n) / rate
        basis = np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 440 * t)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, chunk, rcond=None)
        residual = chunk - basis @ coef
        amplitudes.append(float(np.hypot(*coef)))
        snrs.append(float(10 * np.log10(np.sum((basis @ coef) ** 2) / max(np.sum(residual**2), 1e-9))))
    assert amplitudes, "no tone in the audio"
    return float(np.median(amplitudes)), float(np.median(snrs))


async def test_a_call_is_answered_and_the_reply_arrives_as_mulaw_that_decodes_to_the_agents_voice(
        twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio)
    async with served_agents([agent], registry) as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.wait_for(agent_went_quiet())  # the greeting
            await phone.say(goforward())
            asked = phone.now()
            await phone.wait_for(lambda p: p.report.seconds_heard(since=asked) > 0)
            await phone.wait_for(agent_went_quiet())  # the answer
        [result] = await finished_calls(server)
    report = phone.report
    assert {len(payload) for payload in report.payloads} == {160}  # 20 ms of μ-law each
    assert report.marks_received == len(report.payloads) and not report.clears
    assert all(not cleared for _, _, cleared in report.echoed)
    amplitude, snr = tone_fit(report.heard())
    assert amplitude == pytest.approx(TONE_LEVEL, rel=0.05) and snr > 25  # μ-law's own noise is ~-38 dB
    spoken = len(GREETING) + len(ANSWER)
    assert report.seconds_heard() == pytest.approx(spoken * 0.06, abs=0.15)
    greeting, *replies = result.timeline.turns
    [reply] = [turn for turn in replies if turn.outcome != "discarded"]  # a preemptive reply may be dropped
    assert greeting.outcome == "completed" and reply.outcome == "completed"
    assert reply.user_text == "what time is it" and reply.heard_text == ANSWER
    assert reply.mouth_to_ear is not None and reply.mouth_to_ear > 0
    assert result.ended_because == "caller hung up" and report.stopped
    assert twilio.requests == []  # the caller hung up: nothing to end through the REST API


async def test_barge_in_sends_clear_and_the_context_keeps_only_what_the_echoed_marks_say_was_heard(
        twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(
        twilio,
        stt=[{"provider": "scripted-stt", "lines": ["tell me everything", "stop please"]}],
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY, "Sure."]}],
        tts=[{"provider": "tone", "alignment": True, "chunk_seconds": 0.02}],  # heard text to 20 ms
    )
    calls: list[TwilioCall] = []
    async with served_agents([agent], registry) as server:
        (await transport_of(server, agent)).on_call(calls.append)
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.wait_for(agent_went_quiet())
            await phone.say(speech_like(0.8))
            asked = phone.now()
            await phone.wait_for(agent_audible_for(1.5, since=asked))
            await phone.say(goforward())  # the caller talks over the answer
            await phone.wait_for(lambda p: bool(p.report.clears))
            await phone.wait_for(agent_went_quiet())  # "Sure."
        [result] = await finished_calls(server)
        llm = next(p for p in server.pool._instances.values() if p.name == "scripted-llm")
    report = phone.report
    [cleared_at] = report.clears
    assert any(cleared for _, _, cleared in report.echoed)  # Twilio echoed the dropped audio's marks
    interrupted = next(t for t in result.timeline.turns if t.outcome == "interrupted")
    heard = interrupted.heard_text.rstrip("…")
    assert heard and LONG_REPLY.startswith(heard) and heard != LONG_REPLY
    # What the agent counts as heard is what the phone played: never the cleared audio (the
    # server sent about `ahead`, a second, more than had played), at most the echoes still on
    # their way when it cleared less.
    played = report.seconds_heard()
    assert calls[0].heard_seconds <= played + 0.021
    assert calls[0].heard_seconds >= played - 0.5
    played_of_answer = report.seconds_heard(since=asked, until=cleared_at)
    assert len(heard) * 0.06 <= played_of_answer + 0.05
    assert len(heard) * 0.06 >= played_of_answer - 0.5 - max(len(w) for w in LONG_REPLY.split()) * 0.06
    # The model's next request remembers only the heard words, marked as cut off.
    assistant = [m for m in llm.requests[-1] if m.role == "assistant"]
    assert assistant[0].content.rstrip("…") == heard and assistant[0].interrupted
    answer = [t for t in result.timeline.turns if t.kind == "reply" and t.outcome == "completed"]
    assert answer[-1].heard_text == "Sure."


async def test_keypad_digits_reach_the_conversation_and_the_calls_other_listeners(twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio, llm=[{"provider": "scripted-llm", "replies": ["Account noted."]}])
    pressed: list[tuple[str, float]] = []
    async with served_agents([agent], registry) as server:
        (await transport_of(server, agent)).on_call(lambda call: call.on_dtmf(lambda d, t: pressed.append((d, t))))
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.wait_for(agent_went_quiet())
            entered = phone.now()
            for digit in "12*9#":  # an entry, ended by its end key
                await phone.press(digit)
            await phone.wait_for(lambda p: p.report.seconds_heard(since=entered) > 0)
            await phone.wait_for(agent_went_quiet())
        [result] = await finished_calls(server)
        llm = next(p for p in server.pool._instances.values() if p.name == "scripted-llm")
    assert [digit for digit, _ in pressed] == list("12*9#")
    times = [t for _, t in pressed]
    assert times == sorted(times)
    # The turn manager took the entry as the caller's words and the agent answered it.
    user = [m.content for m in llm.requests[-1] if m.role == "user"]
    assert user[-1] == "(pressed on the keypad: 12*9#)"
    assert [t.heard_text for t in result.timeline.turns if t.outcome == "completed"] == [GREETING, "Account noted."]


@pytest.mark.parametrize("ending", ["silence", "max_call"])
async def test_the_agent_hangs_up_through_twilios_rest_api_after_its_goodbye_was_heard(
        twilio: FakeTwilio, ending: str) -> None:
    paths = ({"silence": {"reprompt_after": 0.5, "reprompts": [], "goodbye": "Bye now."}} if ending == "silence"
             else {"max_call_seconds": 2.0, "max_call_goodbye": "Time is up, bye."})
    registry, agent = phone_agent(twilio, unhappy_paths=paths)
    async with served_agents([agent], registry) as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.wait_closed()
        [result] = await finished_calls(server)
    [hang_up] = twilio.requests
    assert hang_up.call_sid == phone.call_sid and hang_up.account_sid == ACCOUNT_SID
    assert hang_up.username == ACCOUNT_SID and hang_up.authenticated
    assert hang_up.form == {"Status": "completed"} and hang_up.status_code == 200
    assert twilio.status(phone.call_sid) == "completed"
    report = phone.report
    goodbye = result.timeline.turns[-1]
    assert goodbye.kind == "goodbye" and goodbye.outcome == "completed"
    assert goodbye.heard_text == ("Bye now." if ending == "silence" else "Time is up, bye.")
    # Hung up once the goodbye had played to its end: its last mark was echoed before.
    last_echo = max(t for t, _, cleared in report.echoed if not cleared)
    assert report.opened_at + last_echo <= hang_up.received_at
    assert not report.clears
    assert report.stopped or report.close_code == 1000  # whichever came first: Twilio's stop, our close


@pytest.mark.parametrize("garbage", [
    "this is not json",
    '{"event": "media", "streamSid": "MZ0", "media": {"payload": "@@not base64@@"}}',
    '{"event": "start", "streamSid": "MZ0"}',
])
async def test_a_malformed_message_ends_that_call_only(twilio: FakeTwilio, garbage: str) -> None:
    registry, agent = phone_agent(twilio)
    async with served_agents([agent], registry) as server:
        url = webhook(server, agent)
        async with TwilioCaller(url, twilio=twilio) as broken, TwilioCaller(url, twilio=twilio) as good:
            await broken.wait_for(agent_went_quiet())
            await good.wait_for(agent_went_quiet())
            await broken.send_raw(garbage)
            await broken.wait_closed()
            await good.say(speech_like(0.8))
            asked = good.now()
            await good.wait_for(lambda p: p.report.seconds_heard(since=asked) > 0)
            await good.wait_for(agent_went_quiet())
            assert not good.closed
        results = await finished_calls(server, 2)
    assert broken.report.close_code == 1007
    assert [r.call_sid for r in twilio.hang_ups] == [broken.call_sid]  # ended on the phone too
    by_call = {r.call_id: r for r in results}
    answered = by_call[f"twilio-{good.call_sid}"].timeline.turns
    assert [t.heard_text for t in answered if t.outcome == "completed"] == [GREETING, ANSWER]


async def test_a_drain_says_goodbye_on_the_line_then_hangs_up(twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(twilio, serving={"drain": {"grace": 0, "goodbye": "We are closing, bye."}})
    async with served_agents([agent], registry) as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.wait_for(agent_went_quiet())
            server.control.drain()  # what SIGTERM does
            await phone.wait_closed()
        [result] = await finished_calls(server)
    goodbye = result.timeline.turns[-1]
    assert goodbye.kind == "goodbye" and goodbye.heard_text == "We are closing, bye."
    [hang_up] = twilio.hang_ups
    assert hang_up.call_sid == phone.call_sid
    last_echo = max(t for t, _, cleared in phone.report.echoed if not cleared)
    assert phone.report.opened_at + last_echo <= hang_up.received_at
    assert phone.report.seconds_heard() == pytest.approx(len(GREETING + "We are closing, bye.") * 0.06, abs=0.15)


async def test_when_the_rest_api_fails_closing_the_stream_still_ends_the_call() -> None:
    async with FakeTwilio(fail_with=500) as twilio:
        registry, agent = phone_agent(twilio, unhappy_paths={
            "silence": {"reprompt_after": 0.3, "reprompts": [], "goodbye": "Bye now."}})
        async with served_agents([agent], registry) as server:
            async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
                await phone.wait_closed()
            await finished_calls(server)
    assert [r.status_code for r in twilio.requests] == [500]
    assert phone.report.close_code == 1000 and not phone.report.stopped  # closed by us: <Connect> ends
