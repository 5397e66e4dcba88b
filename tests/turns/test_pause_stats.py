"""The adaptive silence policy (voiceflow/turns/pause_stats.py): what a call's pauses teach it."""

from __future__ import annotations

import pytest

from voiceflow.config.endpointing import AdaptiveSilence
from voiceflow.turns.pause_stats import LONGEST, PauseLearner

FLOOR = 0.45
ON = AdaptiveSilence()


def learned(*pauses: float, settings: AdaptiveSilence = ON, floor: float = FLOOR) -> float:
    learner = PauseLearner()
    for pause in pauses:
        learner.went_on(pause, floor)
    return learner.wait(settings, floor).silence


def test_a_caller_who_does_not_pause_waits_the_floor_however_long_the_call() -> None:
    learner = PauseLearner()
    for _ in range(50):
        learner.turn_confirmed()
    wait = learner.wait(ON, FLOOR)
    assert wait.silence == FLOOR and not wait.raised


def test_breaths_are_not_evidence() -> None:
    learner = PauseLearner()
    assert not learner.went_on(0.15, FLOOR)  # under half the floor
    assert learner.wait(ON, FLOOR).silence == FLOOR


def test_a_cut_off_raises_the_wait_to_cover_that_pause_with_the_margin() -> None:
    learner = PauseLearner()
    assert learner.went_on(0.65, FLOOR)
    wait = learner.wait(ON, FLOOR)
    assert wait.silence == pytest.approx(0.65 + ON.margin)
    assert wait.raised
    assert "0.80 s, not 0.45" in wait.describe(ON) and "p90 0.65 s of 1" in wait.describe(ON)


def test_short_pauses_never_lower_the_wait_below_the_floor() -> None:
    assert learned(0.3, 0.3, 0.3, settings=AdaptiveSilence(margin=0.05)) == FLOOR


def test_the_raise_is_bounded_by_max_silence_and_a_higher_floor_still_wins() -> None:
    assert learned(1.8) == pytest.approx(ON.max_silence)
    assert learned(1.8, floor=1.5) == pytest.approx(1.5)  # a state's own min_silence above max_silence


def test_a_silence_too_long_to_be_a_pause_inside_a_turn_is_not_learned() -> None:
    learner = PauseLearner()
    assert not learner.went_on(LONGEST + 2.0, FLOOR)
    assert not learner.went_on(float("nan"), FLOOR)
    assert learner.wait(ON, FLOOR).silence == FLOOR


def test_the_percentile_decides_whether_one_rare_long_pause_counts() -> None:
    pauses = [0.3] * 9 + [0.9]
    assert learned(*pauses) == FLOOR  # p90: nine in ten pauses are short, the wait covers them
    assert learned(*pauses, settings=AdaptiveSilence(percentile=0.95)) == pytest.approx(0.9 + ON.margin)


def test_a_single_long_pause_is_forgotten_turn_by_turn() -> None:
    learner = PauseLearner()
    learner.went_on(0.8, FLOOR)
    waits = [learner.wait(ON, FLOOR).silence]
    for _ in range(12):
        learner.turn_confirmed()
        waits.append(learner.wait(ON, FLOOR).silence)
    assert waits[0] == pytest.approx(0.95)
    assert all(later < earlier for earlier, later in zip(waits, waits[1:], strict=False))
    # half-life 3 turns: after 3 turns half the raise is left; after 12, a sixteenth
    assert waits[3] - FLOOR == pytest.approx((0.95 - FLOOR) / 2)
    assert waits[12] - FLOOR == pytest.approx((0.95 - FLOOR) / 16)


def test_a_caller_who_pauses_at_every_turn_keeps_being_waited_for() -> None:
    learner = PauseLearner()
    for _ in range(10):
        learner.went_on(0.7, FLOOR)
        learner.turn_confirmed()
    assert learner.wait(ON, FLOOR).silence == pytest.approx(0.7 + ON.margin)


def test_off_means_the_fixed_wait() -> None:
    assert learned(0.8, 0.8, settings=AdaptiveSilence(enabled=False)) == FLOOR
