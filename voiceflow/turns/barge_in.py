"""Whether caller speech over the agent is an interruption: the barge-in policy.

The turn manager owns the mechanics (cancel the reply, flush the transport, cut the context);
this module owns the judgement, so richer rules (minimum words from interim transcripts, phrase
lists that always or never interrupt, echo gating while the agent's own voice is on the line)
can grow here without touching the state machine.

The judgement is on *voiced* time: a detector confirms the end of speech only after its stop
window, so a timer alone would count that window as speech and let a 0.2 s "mm-hm" interrupt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from voiceflow.config.models import BargeIn

VOICE_GAP = 0.07
"""Seconds without a voiced frame after which the caller counts as having stopped: a detector
window (Silero's is 32 ms) plus a frame of hand-off, with a little slack."""

RECHECK = 0.02
"""How soon to look again while the caller is still voicing but not yet for long enough."""


class Verdict(Enum):
    INTERRUPT = "interrupt"
    WAIT = "wait"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Overlap:
    """Caller speech that started while the agent had a reply in flight."""

    started: float
    check_at: float


class BargeInPolicy:
    def __init__(self, settings: BargeIn) -> None:
        self.settings = settings

    def on_speech_start(
        self, t: float, now: float, *, interruptible: bool, first_heard: float | None
    ) -> Overlap | None:
        """Speech began at audio time ``t`` over a reply: an overlap to watch, or None to ignore."""
        if not self.settings.enabled or not interruptible:
            return None
        if first_heard is not None and now - first_heard < self.settings.ignore_first:
            return None  # echo warm-up: the agent's own first words may come back on the line
        return Overlap(t, max(now, t + self.settings.min_speech))

    def judge(self, overlap: Overlap, now: float, voiced_until: float) -> Verdict:
        """At a check: interrupt once the voiced span reaches ``min_speech``; keep watching while
        the caller is still voicing; otherwise the speech already stopped short, and the end of
        speech (:meth:`long_enough`) will settle it."""
        if voiced_until - overlap.started >= self.settings.min_speech:
            return Verdict.INTERRUPT
        if now - voiced_until <= VOICE_GAP:
            return Verdict.WAIT
        return Verdict.STOPPED

    def long_enough(self, overlap: Overlap, speech_end: float) -> bool:
        """At the end of the overlapping speech: was it long enough to count after all?"""
        return speech_end - overlap.started >= self.settings.min_speech
