"""The barge-in judgement on its own: enabled, interruptible, echo warm-up, voiced length."""

from __future__ import annotations

from voiceflow.config.models import BargeIn
from voiceflow.turns.barge_in import BargeInPolicy, Verdict


def test_overlap_is_checked_after_min_speech_of_audio_time() -> None:
    policy = BargeInPolicy(BargeIn(min_speech=0.4))
    overlap = policy.on_speech_start(10.0, 10.1, interruptible=True, first_heard=8.0)
    assert overlap is not None and overlap.check_at == 10.4


def test_disabled_non_interruptible_and_warm_up_are_ignored() -> None:
    assert BargeInPolicy(BargeIn(enabled=False)).on_speech_start(1, 1, interruptible=True, first_heard=0) is None
    assert BargeInPolicy(BargeIn()).on_speech_start(1, 1, interruptible=False, first_heard=0) is None
    warm = BargeInPolicy(BargeIn(ignore_first=2.0))
    assert warm.on_speech_start(1.0, 1.0, interruptible=True, first_heard=0.0) is None
    assert warm.on_speech_start(3.0, 3.0, interruptible=True, first_heard=0.0) is not None


def test_judged_on_voiced_time_not_on_the_detectors_stop_window() -> None:
    policy = BargeInPolicy(BargeIn(min_speech=0.35))
    overlap = policy.on_speech_start(5.0, 5.06, interruptible=True, first_heard=1.0)
    assert overlap is not None
    # At the check the last voiced frame was 0.15 s ago: the caller already stopped.
    assert policy.judge(overlap, heard_until=5.35, voiced_until=5.2) is Verdict.STOPPED
    # Voiced until a window ago, 0.32 s in all: not yet enough, but still talking: look again.
    assert policy.judge(overlap, heard_until=5.35, voiced_until=5.32) is Verdict.WAIT
    assert policy.judge(overlap, heard_until=5.37, voiced_until=5.352) is Verdict.INTERRUPT
    # A 0.29 s "mm" that was still voiced a moment before the check must not interrupt.
    assert policy.judge(overlap, heard_until=5.35, voiced_until=5.29) is Verdict.WAIT
    assert policy.judge(overlap, heard_until=5.37, voiced_until=5.29) is Verdict.STOPPED
    assert not policy.long_enough(overlap, speech_end=5.29)
    assert policy.long_enough(overlap, speech_end=5.5)
