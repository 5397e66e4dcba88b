"""Holding a reply at the caller's voice onset, before the detector has called it speech: when
an onset is noted, who takes the hold over, and that a hold never outlives its reply."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from audio_fixtures import espeak_pcm
from voiceflow.clock import VirtualClock
from voiceflow.config.echo import EchoDefence
from voiceflow.config.models import BargeIn
from voiceflow.frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame, VADEvent, VADKind
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.providers import VADProvider, VADStream
from voiceflow.runtime.echo import ABSENT_AFTER, EchoCanceller
from voiceflow.runtime.reply import Reply
from voiceflow.runtime.voice_activity import VoiceActivity
from voiceflow.turns.overlap_watch import OverlapWatch

SILENT = bytes(2 * FRAME_SAMPLES)


class _Scripted(VADStream):
    """Voiced on the frames listed, speech declared from ``start_at`` (a frame index) on."""

    def __init__(self, voiced: set[int], start_at: int | None = None, coarse: bool = False) -> None:
        self._voiced, self._start_at, self._coarse = voiced, start_at, coarse
        self._until = float("-inf")
        self._speaking = False

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def voiced_until(self) -> float:
        return super().voiced_until if self._coarse else self._until

    def process(self, frame: AudioFrame) -> VADEvent | None:
        index = round(frame.t / FRAME_SECONDS)
        if index in self._voiced:
            self._until = frame.t + FRAME_SECONDS
        if index == self._start_at:
            self._speaking = True
            return VADEvent(VADKind.SPEECH_START, frame.t, frame.t + FRAME_SECONDS)
        return None


class _Provider(VADProvider):  # type: ignore[type-arg]
    name = "scripted"

    def __init__(self, stream: VADStream) -> None:
        self._stream = stream

    def create_stream(self) -> VADStream:
        return self._stream


def _onsets(stream: VADStream, frames: int) -> list[int]:
    vad = VoiceActivity([_Provider(stream)], VirtualClock(0.0))

    async def run() -> list[int]:
        found = []
        for i in range(frames):
            await vad.aprocess(AudioFrame(SILENT, i * FRAME_SECONDS))
            if vad.onset is not None:
                found.append(round(vad.onset / FRAME_SECONDS))
        return found

    return anyio.run(run)


def test_an_onset_is_the_first_voiced_frame_after_quiet_and_only_that() -> None:
    # Voiced 10-14 (one stretch), a frame's gap inside it is the same stretch; 30-31 after quiet.
    voiced = {10, 11, 12, 14, 30, 31}
    assert _onsets(_Scripted(voiced), 40) == [10, 30]


def test_no_onset_once_the_detector_calls_it_speech_nor_from_a_coarse_detector() -> None:
    assert _onsets(_Scripted({10, 11, 12, 13}, start_at=10), 20) == []  # speech from its first frame
    assert _onsets(_Scripted({10, 11, 12, 13}, start_at=12), 20) == [10]
    assert _onsets(_Scripted({10, 11, 12, 13}, start_at=12, coarse=True), 20) == []


class _Line:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> bool:
        self.calls.append("pause")
        return True

    def resume(self) -> None:
        self.calls.append("resume")


def _judged_echo() -> EchoCanceller:
    """A canceller that has heard the agent long enough to know the line brings nothing back."""
    echo = EchoCanceller(EchoDefence())
    echo.played(bytes(2 * ABSENT_AFTER), 0.0)
    assert echo.echoes is False
    return echo


def _echoing_echo() -> EchoCanceller:
    """A canceller that has found the agent's voice coming back (150 ms late, 12 dB down)."""
    echo = EchoCanceller(EchoDefence())
    voice = np.frombuffer(espeak_pcm("Would you like some tea, or would you rather have coffee?"), np.int16)
    delay = round(0.15 * SAMPLE_RATE)
    line = np.concatenate([np.zeros(delay), voice[:-delay] / 4]).astype(np.int16)
    for at in range(0, len(voice) - FRAME_SAMPLES, FRAME_SAMPLES):
        echo.played(voice[at : at + FRAME_SAMPLES].tobytes(), at / SAMPLE_RATE)
        echo.clean(AudioFrame(line[at : at + FRAME_SAMPLES].tobytes(), at / SAMPLE_RATE))
    assert echo.echoes is True
    return echo


def _watch(echo: EchoCanceller | None, **settings: object) -> tuple[OverlapWatch, _Line, Reply]:
    line = _Line()
    watch = OverlapWatch(line, VirtualClock(10.0), lambda: BargeIn(**settings), echo)  # type: ignore[arg-type]
    reply = Reply(1, "reply", True, TurnTimeline(1, "reply"))
    reply.first_heard = 8.0
    return watch, line, reply


def test_a_voice_that_comes_to_nothing_lets_the_reply_play_on() -> None:
    watch, line, reply = _watch(_judged_echo())
    check = watch.onset(10.0, reply)
    assert check is not None and line.calls == ["pause"]
    assert watch.onset(10.02, reply) is None  # already held
    # Still voicing: look again.
    assert watch.check(10.04, heard_until=10.04, voiced_until=10.02, reply=reply) == (None, pytest.approx(10.06))
    # Quiet for more than a detector window and a frame: play on, and say so.
    assert watch.check(10.16, heard_until=10.16, voiced_until=10.06, reply=reply) == (None, None)
    assert line.calls == ["pause", "resume"]
    assert reply.timeline.overlaps == ["a voice onset, not speech (paused, then played on)"]


def test_a_voice_that_never_becomes_speech_is_held_at_most_min_speech() -> None:
    watch, line, reply = _watch(_judged_echo(), min_speech=0.3)
    watch.onset(10.0, reply)
    assert watch.check(10.28, heard_until=10.28, voiced_until=10.28, reply=reply)[1] is not None
    assert watch.check(10.3, heard_until=10.3, voiced_until=10.3, reply=reply) == (None, None)
    assert line.calls == ["pause", "resume"]


def test_the_speech_start_takes_the_hold_over_and_a_hold_never_outlives_its_reply() -> None:
    watch, line, reply = _watch(_judged_echo())
    watch.onset(10.0, reply)
    assert watch.start(10.0, reply) is not None
    assert line.calls == ["pause"] and watch.overlap is not None and watch.overlap.paused
    watch.reply_gone()  # e.g. its last frame had already played: the next reply is not held
    assert line.calls == ["pause", "resume"] and not watch.overlap.paused

    watch, line, reply = _watch(_judged_echo())
    watch.onset(10.0, reply)
    watch.reply_gone()
    assert line.calls == ["pause", "resume"]
    assert watch.onset(10.5, reply) is not None  # free to hold the next one


def test_no_hold_where_the_line_may_echo_or_the_settings_say_no() -> None:
    for echo, settings in [
        (None, {}),  # no canceller: the agent's own echo would hold it at every word
        (EchoCanceller(EchoDefence()), {}),  # a canceller that does not know the line yet
        (_echoing_echo(), {}),  # a line that echoes: what is left of the echo could hold it
        (_judged_echo(), {"pause_at_onset": False}),
        (_judged_echo(), {"pause_on_speech": False}),
        (_judged_echo(), {"ignore_first": 5.0}),  # 2 s into the reply: still warming up
    ]:
        watch, line, reply = _watch(echo, **settings)
        assert watch.onset(10.0, reply) is None and line.calls == []
