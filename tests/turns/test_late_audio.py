"""Silence counted in the audio received, not on the clock (voiceflow/turns/late_audio.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from audio_fixtures import espeak_pcm, frames, pad
from voiceflow.clock import VirtualClock
from voiceflow.frames import FRAME_SECONDS
from voiceflow.runtime.voice_activity import VoiceActivity
from voiceflow.testing.fakes import EnergyVAD, EnergyVADConfig
from voiceflow.turns.late_audio import RECHECK, Heard, NotYet, silence_heard

GAP = 1.0


@dataclass
class Line:
    heard_until: float
    heard_at: float
    voiced_until: float = float("-inf")


def test_a_pause_whose_audio_has_arrived_is_heard() -> None:
    assert silence_heard(5.0, Line(heard_until=5.02, heard_at=5.02), now=5.02, max_gap=GAP) == Heard()


def test_audio_still_on_its_way_is_waited_for_not_taken_for_silence() -> None:
    # A 100 ms clump is due: the newest frame arrived 60 ms ago and covers audio up to 4.9 s.
    verdict = silence_heard(5.0, Line(heard_until=4.9, heard_at=4.94), now=5.0, max_gap=GAP)
    assert isinstance(verdict, NotYet)
    assert verdict.missing == pytest.approx(0.1)
    assert 5.0 < verdict.check_at <= 5.0 + RECHECK


def test_a_line_that_delivers_nothing_for_max_gap_is_taken_as_silent() -> None:
    line = Line(heard_until=4.3, heard_at=4.3)
    assert isinstance(silence_heard(5.0, line, now=5.2, max_gap=GAP), NotYet)
    assert silence_heard(5.0, line, now=5.3, max_gap=GAP) == Heard(gap=pytest.approx(1.0))


def test_the_latest_look_is_when_the_gap_limit_is_reached() -> None:
    verdict = silence_heard(5.0, Line(heard_until=3.0, heard_at=4.295), now=5.29, max_gap=GAP)
    assert isinstance(verdict, NotYet) and verdict.check_at == pytest.approx(5.295)


def test_voice_in_the_newest_audio_holds_the_pause_until_the_detector_has_decided() -> None:
    onset = Line(heard_until=5.04, heard_at=5.04, voiced_until=5.04)
    assert isinstance(silence_heard(5.0, onset, now=5.04, max_gap=GAP), NotYet)
    blip_long_ago = Line(heard_until=5.04, heard_at=5.04, voiced_until=4.6)
    assert silence_heard(5.0, blip_long_ago, now=5.04, max_gap=GAP) == Heard()
    # a detector that never makes up its mind does not hold the turn for ever
    assert silence_heard(5.0, onset, now=6.0, max_gap=GAP) == Heard()


@pytest.mark.anyio
async def test_the_vad_says_how_far_it_heard_and_when_the_audio_came() -> None:
    """Frames spoken 0.3 s before they arrive (a burst after a hiccup): heard_until follows the
    audio's own times, heard_at the clock's."""
    pcm = pad(espeak_pcm("hello there"), after=0.4)
    async with VirtualClock() as clock:
        vad = VoiceActivity([EnergyVAD(EnergyVADConfig())], clock)
        assert vad.heard_at == pytest.approx(clock.now(), abs=0.01) and vad.heard_until == float("-inf")
        await clock.sleep(0.3)
        burst = frames(pcm)[:15]
        for frame in burst:
            await vad.aprocess(frame)
        assert vad.heard_until == pytest.approx(15 * FRAME_SECONDS)
        assert vad.heard_at == pytest.approx(0.3, abs=0.01)
        await clock.sleep(0.1)
        await vad.aprocess(frames(pcm)[15])
        assert vad.heard_at == pytest.approx(0.4, abs=0.01)
