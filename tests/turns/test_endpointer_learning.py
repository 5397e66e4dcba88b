"""The endpointer's use of its two policies, one caller event at a time: which pauses it learns
from (pause_stats) and how it waits for audio that is late (late_audio)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from voiceflow.config.endpointing import Endpointing
from voiceflow.frames import Transcript
from voiceflow.turns.endpointing import Endpointer
from voiceflow.turns.events import TranscriptReceived
from voiceflow.turns.replies import UserTurn


@dataclass
class Clock:
    t: float = 0.0

    def now(self) -> float:
        return self.t


@dataclass
class Recogniser:
    """What the endpointer asks of the recogniser: a number per finalize request."""

    requests: int = 0
    provider_name: str = "test"

    def speech_started(self, t: float) -> None:
        pass

    def finalize(self) -> int:
        self.requests += 1
        return self.requests


@dataclass
class Line:
    """The call's VAD as the endpointer sees it: how far the caller's audio has arrived."""

    clock: Clock
    lag: float = 0.0
    stalled_at: float | None = None
    voiced_until: float = float("-inf")
    spoken: list[tuple[float, float]] = field(default_factory=list)

    @property
    def heard_until(self) -> float:
        return (self.stalled_at if self.stalled_at is not None else self.clock.t) - self.lag

    @property
    def heard_at(self) -> float:
        return self.stalled_at if self.stalled_at is not None else self.clock.t


FLOOR = 0.45


def endpointer(**settings: Any) -> tuple[Endpointer, Clock, Line, Recogniser]:
    clock, stt = Clock(), Recogniser()
    line = Line(clock)
    config = Endpointing(**settings)
    return Endpointer(cast(Any, stt), cast(Any, clock), lambda: config, line), clock, line, stt


def said(ep: Endpointer, stt: Recogniser, text: str) -> None:
    ep.transcript(TranscriptReceived(Transcript(text, True, 0.0, finalized=True), stt.requests))


def pause(ep: Endpointer, clock: Clock, start: float, end: float) -> None:
    """The caller speaks from ``start`` to ``end`` (audio time) and the VAD says so 0.2 s later."""
    if ep.user is None:
        clock.t = start
        ep.speech_started(start, resumed=False)
    clock.t = end + 0.2
    assert ep.speech_ended(end, clock.t) is not None


def run_out(ep: Endpointer, clock: Clock) -> float:
    """Let the endpoint timer fire until the pause is long enough; the clock time it ended."""
    deadline = ep.endpoint_at()
    for _ in range(1000):
        clock.t = max(clock.t, deadline)
        later = ep.silence_reached()
        if later is None:
            return clock.t
        deadline = later
    raise AssertionError("the pause never ended")


def test_a_pause_the_caller_goes_on_after_is_learned() -> None:
    ep, clock, _, stt = endpointer()
    pause(ep, clock, 0.0, 1.0)
    clock.t = 1.4
    ep.speech_started(1.4, resumed=True)  # a 0.4 s pause, under the 0.45 s wait
    pause(ep, clock, 1.4, 2.5)
    assert ep.pauses.wait(Endpointing().adaptive, FLOOR).silence == pytest.approx(0.55)


def test_a_pause_the_words_held_open_is_not_learned() -> None:
    ep, clock, _, stt = endpointer()
    pause(ep, clock, 0.0, 1.0)
    said(ep, stt, "I would like a pizza and")  # a trailing 'and': held for 1.2 s
    clock.t = 1.9
    ep.speech_started(1.9, resumed=True)  # the caller went on after 0.9 s
    assert ep.pauses.wait(Endpointing().adaptive, FLOOR).silence == FLOOR


def answered(ep: Endpointer, clock: Clock, stt: Recogniser) -> UserTurn:
    pause(ep, clock, 0.0, 1.0)
    said(ep, stt, "I called last week")
    run_out(ep, clock)
    ep.decision()
    return ep.end()


def test_going_on_over_the_reply_before_anyone_could_answer_it_is_a_cut_off_learned() -> None:
    ep, clock, _, stt = endpointer()
    turn = answered(ep, clock, stt)
    clock.t = 1.7
    user = ep.barged_in(1.7, None, answering=turn, heard_from=1.6)  # 0.1 s after the reply was heard
    assert user.endpoint_notes == ["cut off: the caller went on after a 0.70 s pause (learned)"]
    assert ep.pauses.wait(Endpointing().adaptive, FLOOR).silence == pytest.approx(0.85)


def test_answering_the_reply_is_not_a_cut_off() -> None:
    ep, clock, _, stt = endpointer()
    turn = answered(ep, clock, stt)
    clock.t = 2.4
    user = ep.barged_in(2.4, None, answering=turn, heard_from=1.6)  # 0.8 s into the reply: a reaction
    assert user.endpoint_notes == []
    assert ep.pauses.wait(Endpointing().adaptive, FLOOR).silence == FLOOR


def test_the_learned_wait_ends_the_next_pause_and_says_so() -> None:
    ep, clock, _, stt = endpointer()
    turn = answered(ep, clock, stt)
    ep.barged_in(1.7, None, answering=turn, heard_from=1.6)
    pause(ep, clock, 1.7, 3.0)
    said(ep, stt, "about my internet connection")
    ended = run_out(ep, clock)
    assert ended == pytest.approx(3.85)
    assert any(note.startswith("adaptive silence: 0.85 s, not 0.45") for note in ep.user.endpoint_notes)  # type: ignore[union-attr]


def test_a_pause_whose_audio_is_late_ends_only_when_the_audio_has_arrived() -> None:
    ep, clock, line, stt = endpointer()
    line.lag = 0.25  # a jitter buffer a quarter of a second deep
    pause(ep, clock, 0.0, 1.0)
    said(ep, stt, "I would like to book a table")
    assert run_out(ep, clock) == pytest.approx(1.45 + 0.25)
    assert "late audio: waited 0.25 s for the pause's audio to arrive" in ep.user.endpoint_notes  # type: ignore[union-attr]


def test_a_line_that_stops_delivering_is_taken_as_silent_after_max_delivery_gap() -> None:
    ep, clock, line, stt = endpointer(max_delivery_gap=0.8)
    pause(ep, clock, 0.0, 1.0)
    line.stalled_at = 1.25  # nothing arrives after 1.25 s
    said(ep, stt, "I would like to book a table")
    assert run_out(ep, clock) == pytest.approx(1.25 + 0.8)
    assert any(note.startswith("late audio: no caller audio for 0.80 s") for note in ep.user.endpoint_notes)  # type: ignore[union-attr]
