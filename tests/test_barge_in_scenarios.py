"""Barge-in as a caller hears it: the agent goes silent the moment speech starts over it, plays
on from where it stopped after a backchannel, a cough or its own echo, and stops for good for an
interruption or an interrupt phrase. Caller speech is timed relative to the agent's audio."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness import Cue, fake_agent, fake_registry, run_call
from voiceflow.frames import SAMPLE_RATE
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

GREETING = (
    "Well, there are many things to say about that. First of all, the weather today is mild. "
    "Second, the trains are running on time. Third, the cafe on the corner opens at nine."
)


async def call(burst: bytes, *, interims: list[str] | None = None, **barge_in: Any) -> tuple[Any, Any]:
    registry = fake_registry()
    agent = fake_agent(
        registry,
        prompt={"system": "x", "greeting": {"text": GREETING}},
        stt=[{"provider": "scripted-stt", "lines": ["hello"], "interims": interims or [], "interim_after": 0.1}],
        turn_taking={"barge_in": barge_in} if barge_in else {},
    )
    caller = [Cue(burst + silence(6.0), after_agent_audio=1.5)]
    result, transport, _ = await run_call(agent, registry, caller, start="immediately", lead_in=0)
    return result.timeline.turns[0], transport


BLOCK = SAMPLE_RATE // 100
"""Loudness is judged per 10 ms block (a tone's single samples cross zero)."""


def onset_and_agent(transport: Any) -> tuple[float, np.ndarray]:
    """The caller's onset (seconds) and the agent's loudness per sample (each sample carrying
    its 10 ms block's peak)."""
    caller, agent = (np.frombuffer(track, "<i2") for track in transport.tracks())
    onset = int(np.argmax(np.abs(caller) > 1000))
    level = np.abs(agent.astype(np.int32))
    blocks = level[: len(level) - len(level) % BLOCK].reshape(-1, BLOCK).max(axis=1)
    return onset / SAMPLE_RATE, np.repeat(blocks, BLOCK)


def silent_run_after(agent: np.ndarray, t: float) -> float:
    """Seconds of agent silence starting within 0.1 s after ``t`` (the longest such run)."""
    start = int(t * SAMPLE_RATE)
    window = agent[start : start + int(3 * SAMPLE_RATE)] < 50
    best = run = 0
    for i, quiet in enumerate(window):
        run = run + 1 if quiet else 0
        if i - run < int(0.1 * SAMPLE_RATE):
            best = max(best, run)
    return best / SAMPLE_RATE


async def test_a_cough_pauses_the_agent_and_it_plays_on_from_where_it_stopped() -> None:
    greeting, transport = await call(speech_like(0.2))
    assert greeting.outcome == "completed"
    assert greeting.heard_text == GREETING
    assert greeting.overlaps == ["too short to interrupt (paused, then played on)"]
    onset, agent = onset_and_agent(transport)
    assert silent_run_after(agent, onset) >= 0.15

    greeting, transport = await call(speech_like(0.2), pause_on_speech=False)
    assert greeting.outcome == "completed" and greeting.overlaps == ["too short to interrupt"]
    onset, agent = onset_and_agent(transport)
    assert silent_run_after(agent, onset) < 0.05  # talked on through it


async def test_backchannel_words_never_interrupt_however_long() -> None:
    greeting, _ = await call(speech_like(0.9), interims=["mhm yeah"])
    assert greeting.outcome == "completed"
    assert greeting.overlaps == ["backchannel or echo: 'mhm yeah' (paused, then played on)"]


async def test_the_agents_own_words_coming_back_are_echo() -> None:
    greeting, _ = await call(speech_like(0.9), interims=["there are many things to say"])
    assert greeting.outcome == "completed"
    assert greeting.overlaps[0].startswith("backchannel or echo")

    greeting, _ = await call(speech_like(0.9), interims=["there are many things to say"], echo_guard=False)
    assert greeting.outcome == "interrupted"


async def test_an_interrupt_phrase_stops_the_agent_even_when_short() -> None:
    greeting, _ = await call(speech_like(0.25), interims=["stop"])
    assert greeting.outcome == "interrupted"
    assert greeting.heard_text.endswith("…") and len(greeting.heard_text) < len(GREETING) / 2

    greeting, _ = await call(speech_like(0.25))
    assert greeting.outcome == "completed"


async def test_a_real_interruption_silences_the_agent_at_its_onset() -> None:
    def loud_between(agent: np.ndarray, start: float, end: float) -> bool:
        return bool(np.any(agent[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)] > 50))

    greeting, transport = await call(speech_like(1.2))
    assert greeting.outcome == "interrupted"
    onset, agent = onset_and_agent(transport)
    # Silent within a few frames of the caller's onset (the detector's onset plus the frame already
    # playing), not after min_speech (0.35 s) of talking over each other.
    assert loud_between(agent, onset - 0.2, onset)
    assert not loud_between(agent, onset + 0.1, onset + 1.2)

    greeting, transport = await call(speech_like(1.2), pause_on_speech=False)
    assert greeting.outcome == "interrupted"
    onset, agent = onset_and_agent(transport)
    assert loud_between(agent, onset + 0.1, onset + 0.3)


# --- holding the reply at the voice's onset (``pause_at_onset``) --------------------------------

SLOW_START = [{"provider": "energy", "start_secs": 0.2}]
"""A detector that calls speech only after 0.2 s of it: the onset hold's gain is that window."""


async def onset_call(burst: bytes, *, cancel_echo: bool = True, **barge_in: Any) -> tuple[Any, Any]:
    """As :func:`call`, with the slow detector, the caller cutting in once the agent has talked
    long enough for the echo canceller to find that the line brings nothing back."""
    registry = fake_registry()
    agent = fake_agent(
        registry,
        prompt={"system": "x", "greeting": {"text": GREETING}},
        vad=SLOW_START,
        stt=[{"provider": "scripted-stt", "lines": ["hello"]}],
        turn_taking={"barge_in": {**barge_in, "echo": {"cancel": cancel_echo}}},
    )
    caller = [Cue(burst + silence(6.0), after_agent_audio=2.5)]
    result, transport, _ = await run_call(agent, registry, caller, start="immediately", lead_in=0)
    return result.timeline.turns[0], transport


def last_loud_before(agent: np.ndarray, t: float) -> float:
    """Seconds after ``t`` at which the agent's audio last sounded, looking up to 0.5 s on."""
    start = int(t * SAMPLE_RATE)
    loud = np.flatnonzero(agent[start : start + SAMPLE_RATE // 2] > 50)
    return (int(loud[-1]) + 1) / SAMPLE_RATE if len(loud) else 0.0


async def test_the_agent_goes_silent_at_the_voices_onset_not_after_the_detectors_start_window() -> None:
    greeting, transport = await onset_call(speech_like(1.2))
    assert greeting.outcome == "interrupted"
    onset, agent = onset_and_agent(transport)
    # The onset frame (20 ms), the next frame's hand-off, and the frame already playing.
    assert last_loud_before(agent, onset) <= 0.07

    greeting, transport = await onset_call(speech_like(1.2), pause_at_onset=False)
    assert greeting.outcome == "interrupted"
    onset, agent = onset_and_agent(transport)
    assert last_loud_before(agent, onset) >= 0.2  # talked on until the detector called it speech


async def test_a_click_shorter_than_the_start_window_costs_a_moment_of_silence_and_no_words() -> None:
    greeting, transport = await onset_call(speech_like(0.1))
    assert greeting.outcome == "completed" and greeting.heard_text == GREETING
    assert greeting.overlaps == ["a voice onset, not speech (paused, then played on)"]
    onset, agent = onset_and_agent(transport)
    assert 0.05 <= silent_run_after(agent, onset) <= 0.25  # about the click itself, then on

    for off in ({"pause_at_onset": False}, {"cancel_echo": False}):  # or with no canceller to tell
        greeting, transport = await onset_call(speech_like(0.1), **off)
        assert greeting.outcome == "completed" and greeting.overlaps == []
        onset, agent = onset_and_agent(transport)
        assert silent_run_after(agent, onset) < 0.05
