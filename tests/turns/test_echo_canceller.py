"""The echo canceller on real speech: the agent's espeak-ng voice coming back into a caller's
line (delayed, quieter, over a phone line's noise floor), with and without a real caller
(a pocketsphinx-testdata recording) talking over it."""

from __future__ import annotations

import numpy as np
import pytest

from audio_fixtures import espeak_pcm, goforward
from voiceflow.config.echo import EchoDefence
from voiceflow.frames import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame
from voiceflow.runtime.echo import EchoCanceller

AGENT = "Well, there are many things to say about that. First of all, the weather today is mild."
T0 = 1000.0
"""Audio times of a call do not start at zero."""


def _agent_voice() -> np.ndarray:
    return np.frombuffer(espeak_pcm(AGENT), dtype=np.int16).astype(np.float64)


def _db(x: np.ndarray) -> float:
    return 10.0 * float(np.log10(np.mean(x * x) + 1e-9))


def _call(
    agent: np.ndarray,
    *,
    delay: float | list[tuple[float, float]],
    gain_db: float,
    caller: np.ndarray | None = None,
    caller_at: float = 0.0,
    settings: EchoDefence | None = None,
) -> tuple[EchoCanceller, np.ndarray, np.ndarray, np.ndarray]:
    """Play ``agent`` to the caller and send back its echo (``delay`` seconds late, or a list of
    (from second, delay) when the path changes), a -65 dBFS line noise and ``caller``'s voice
    from ``caller_at``. Returns the canceller, what the line carried, its echo part and what the
    canceller let through, sample for sample."""
    echo = EchoCanceller(settings or EchoDefence())
    total = len(agent) + SAMPLE_RATE
    total -= total % FRAME_SAMPLES
    voice = np.zeros(total)
    if caller is not None:
        start = round(caller_at * SAMPLE_RATE)
        voice[start : start + len(caller)] = caller[: total - start]
    paths = [(0.0, delay)] if isinstance(delay, float) else delay
    back = np.zeros(total)
    for at in range(total):
        lag = round(max(d for s, d in paths if s * SAMPLE_RATE <= at) * SAMPLE_RATE)
        if 0 <= at - lag < len(agent):
            back[at] = agent[at - lag] * 10.0 ** (gain_db / 20.0)
    line = voice + back + np.random.default_rng(3).normal(0.0, 32768 * 10 ** (-65 / 20), total)
    line = np.clip(np.rint(line), -32768, 32767)
    out = np.zeros(total)
    for at in range(0, total, FRAME_SAMPLES):
        t = T0 + at / SAMPLE_RATE
        played = agent[at : at + FRAME_SAMPLES]
        if len(played):
            echo.played(played.astype(np.int16).tobytes(), t)
        frame = AudioFrame(line[at : at + FRAME_SAMPLES].astype(np.int16).tobytes(), t)
        out[at : at + FRAME_SAMPLES] = np.frombuffer(echo.clean(frame).pcm, dtype=np.int16)
    return echo, line, back, out


@pytest.mark.parametrize(("delay", "gain_db"), [(0.15, -12.0), (0.04, -6.0), (0.32, -20.0)])
def test_the_agents_echo_is_measured_and_taken_off_the_line(delay: float, gain_db: float) -> None:
    agent = _agent_voice()
    echo, line, back, out = _call(agent, delay=delay, gain_db=gain_db)
    assert echo.delay == pytest.approx(delay, abs=0.001)
    assert echo.gain_db == pytest.approx(gain_db, abs=1.0)
    assert echo.echoes is True
    assert echo.found_at is not None and echo.found_at - T0 - delay < 0.5  # within half a second of echo
    settled = slice(round((echo.found_at - T0 + 0.1) * SAMPLE_RATE), len(out))
    left = out[settled] - (line[settled] - back[settled])  # what remains of the echo
    removed = _db(back[settled]) - _db(left)
    assert removed > 25.0, f"only {removed:.1f} dB of echo removed"


def test_a_caller_talking_over_the_echo_is_left_as_they_spoke() -> None:
    agent = _agent_voice()
    caller = np.frombuffer(goforward(), dtype=np.int16).astype(np.float64)
    echo, line, back, out = _call(agent, delay=0.15, gain_db=-12.0, caller=caller, caller_at=2.0)
    span = slice(2 * SAMPLE_RATE, 2 * SAMPLE_RATE + len(caller))
    voice = line[span] - back[span]  # the caller and the line's noise, without the echo
    assert _db(line[span] - voice) > _db(voice) - 25.0  # the echo was really there, over them
    kept = out[span]
    correlation = float(kept @ voice) / float(np.sqrt((kept @ kept) * (voice @ voice)))
    assert correlation > 0.99
    assert abs(_db(kept) - _db(voice)) < 0.5
    # The filter did not learn the caller's voice as part of the echo path.
    assert echo.gain_db == pytest.approx(-12.0, abs=1.0)
    after = slice(2 * SAMPLE_RATE + len(caller) + SAMPLE_RATE // 10, len(agent))
    assert _db(out[after] - (line[after] - back[after])) < _db(back[after]) - 25.0


def test_a_path_that_changes_is_measured_again() -> None:
    agent = _agent_voice()
    echo, line, back, out = _call(agent, delay=[(0.0, 0.1), (2.5, 0.2)], gain_db=-12.0)
    assert echo.delay == pytest.approx(0.2, abs=0.001)
    late = slice(4 * SAMPLE_RATE, len(agent))
    assert _db(out[late] - (line[late] - back[late])) < _db(back[late]) - 25.0


def test_an_echo_later_than_max_delay_is_not_searched_for() -> None:
    agent = _agent_voice()
    echo, line, back, out = _call(agent, delay=0.3, gain_db=-12.0, settings=EchoDefence(max_delay=0.2))
    assert echo.delay is None and echo.echoes is False
    np.testing.assert_array_equal(out, line)


def test_a_line_without_echo_passes_through_untouched() -> None:
    agent = _agent_voice()
    caller = np.frombuffer(goforward(), dtype=np.int16).astype(np.float64)
    echo, line, back, out = _call(agent, delay=0.15, gain_db=-80.0, caller=caller, caller_at=1.0)
    assert echo.delay is None and echo.echoes is False
    assert echo.frames_cleaned == 0
    np.testing.assert_array_equal(out, line)


def test_before_anything_is_played_a_frame_is_not_even_copied() -> None:
    echo = EchoCanceller(EchoDefence())
    frame = AudioFrame(np.full(FRAME_SAMPLES, 1000, dtype=np.int16).tobytes(), 5.0)
    assert echo.clean(frame) is frame
    assert echo.echoes is None and echo.describe() == "echo path: none found"


def _echo_states(agent: np.ndarray, gain_db: float, noise_dbfs: float = -65.0) -> list[bool | None]:
    """``echoes`` after each frame of a call in which the agent says ``agent`` from the start
    and the line sends it back 0.15 s late at ``gain_db`` over a noise floor; no caller."""
    echo = EchoCanceller(EchoDefence())
    delay = round(0.15 * SAMPLE_RATE)
    back = np.concatenate([np.zeros(delay), agent[:-delay]]) * 10.0 ** (gain_db / 20.0)
    line = back + np.random.default_rng(4).normal(0.0, 32768 * 10 ** (noise_dbfs / 20), len(agent))
    line = np.clip(np.rint(line), -32768, 32767).astype(np.int16)
    states = []
    for at in range(0, len(agent) - FRAME_SAMPLES, FRAME_SAMPLES):
        t = T0 + at / SAMPLE_RATE
        echo.played(agent[at : at + FRAME_SAMPLES].astype(np.int16).tobytes(), t)
        echo.clean(AudioFrame(line[at : at + FRAME_SAMPLES].tobytes(), t))
        states.append(echo.echoes)
    return states


def test_a_line_silent_under_the_agent_is_known_to_bring_nothing_back_within_a_second() -> None:
    """Its silence is the proof (no echo within 40 dB of the agent at any delay it could have):
    no waiting for two seconds of agent audio, during which a caller talking over the agent
    would be searched for a path every 60 ms."""
    states = _echo_states(_agent_voice(), gain_db=-80.0)
    known = states.index(False) * FRAME_SAMPLES / SAMPLE_RATE
    assert known < 1.0  # 0.54 s here; waiting for two seconds of agent audio was the rule
    assert None not in states[states.index(False) :]


@pytest.mark.parametrize(("gain_db", "noise_dbfs"), [(-30.0, -65.0), (-80.0, -40.0)])
def test_a_faint_echo_or_a_noisy_line_is_never_taken_for_silence(gain_db: float, noise_dbfs: float) -> None:
    states = _echo_states(_agent_voice(), gain_db=gain_db, noise_dbfs=noise_dbfs)
    first_known = next((i for i, state in enumerate(states) if state is not None), len(states))
    # The faint echo is found; the noisy line waits out the two seconds of agent audio.
    assert states[first_known] is True or first_known * FRAME_SAMPLES >= 2 * SAMPLE_RATE - FRAME_SAMPLES


def test_a_line_not_yet_heard_is_not_taken_for_silence() -> None:
    """The agent talks for a second before the caller's audio starts flowing: only half a
    second of the line actually heard quiet proves anything."""
    agent = _agent_voice()
    echo = EchoCanceller(EchoDefence())
    quiet = bytes(2 * FRAME_SAMPLES)
    states = []
    for at in range(0, 2 * SAMPLE_RATE, FRAME_SAMPLES):
        t = T0 + at / SAMPLE_RATE
        echo.played(agent[at : at + FRAME_SAMPLES].astype(np.int16).tobytes(), t)
        if at >= SAMPLE_RATE:  # the caller's line from 1 s on
            echo.clean(AudioFrame(quiet, t))
            states.append((at / SAMPLE_RATE, echo.echoes))
    known = next(t for t, state in states if state is False)
    assert 1.48 <= known < 1.7  # the frame from 1.48 s completes half a second of the line
