"""Phone calls end to end on loopback: the real serving stack (uvicorn) answers the webhook and
the media stream; a fake phone speaking Twilio's protocol exactly streams a real recording as
μ-law at real time and echoes marks once the audio before them has played; a fake Twilio REST API
takes the hang-up. Every caller action waits on what the agent does, never on the clock."""

from __future__ import annotations

import numpy as np
import pytest
from twilio_harness import finished_calls, phone_agent, webhook

from audio_fixtures import goforward
from voiceflow.testing.fake_twilio import FakeTwilio
from voiceflow.testing.served import served_agents
from voiceflow.testing.twilio_caller import TwilioCaller, agent_went_quiet

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
