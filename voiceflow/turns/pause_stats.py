"""Adaptive silence: how long *this* caller's mid-turn pauses are, learned during the call.

A fixed ``min_silence`` suits the average caller and cuts off everyone who pauses longer: a
caller who stops for 0.6 s between phrases gets an answer at every phrase. The evidence that the
wait is too short for a caller is in the call itself, in the pauses the caller went on after:

* a pause shorter than the wait, after which the caller went on (the turn was never in doubt,
  but it shows how long they pause);
* a pause the agent took for the end of the turn, after which the caller went on before they
  could have been answering the agent: while it was still thinking (the reply dropped unheard), or
  within :data:`REACTION` of its voice reaching them (nobody answers a voice that fast). Each of
  these is a cut-off, the cost this policy exists to avoid.

The wait becomes a high ``percentile`` of the remembered pauses plus a ``margin``, never below
the configured ``min_silence`` (the floor) and never above ``adaptive.max_silence``. Only pauses
of at least half the floor are remembered: shorter ones are breaths and gaps between words,
which never come near ending a turn and would only dilute the percentile.

A turn the caller let the agent answer is a confirmed end; each one ages what was learned, so
that a pause's weight halves every ``half_life`` turns. The percentile is taken over the weights,
and the raise above the floor is scaled by their sum while it is below one pause's worth: a
single long pause is forgotten within a few turns, a caller who pauses at every turn keeps being
waited for. A caller who never pauses long is never slowed: with nothing remembered, the wait is
the floor.

The policy is pure (no clock, no I/O): the endpointer tells it what happened and asks it for
the wait of the next pause.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from voiceflow.config.endpointing import AdaptiveSilence

REACTION = 0.3
"""Seconds after the agent's voice first reached the caller within which their speech cannot be
an answer to it (a spoken reaction takes longer): speech that soon after a turn end continues
the caller's own turn."""

ADAPTIVE_NOTE = "adaptive silence:"
"""How a turn's timeline notes begin that say its wait was raised, and why."""

REMEMBERED = 32
"""Most pauses kept (the oldest go first; by then their weight is negligible anyway)."""

RELEVANT = 0.5
"""Pauses shorter than this share of the floor are breaths, not evidence."""

LONGEST = 3.0
"""Seconds of silence beyond which the caller was not pausing inside a turn but waiting (for the
agent, or thinking of something new): not evidence about their pauses."""


@dataclass(slots=True)
class _Pause:
    seconds: float
    turns_ago: int = 0


@dataclass(frozen=True, slots=True)
class Wait:
    """The silence rule's wait for the next pause, and why it is what it is."""

    silence: float
    floor: float
    percentile: float | None = None
    """The percentile of the remembered pauses it was raised from (``None``: not raised)."""
    pauses: int = 0

    @property
    def raised(self) -> bool:
        return self.silence > self.floor + 1e-9

    def describe(self, settings: AdaptiveSilence) -> str:
        return (
            f"{ADAPTIVE_NOTE} {self.silence:.2f} s, not {self.floor:g} (this caller's pauses: "
            f"p{round(settings.percentile * 100)} {self.percentile or 0.0:.2f} s of {self.pauses}, "
            f"+ {settings.margin:g} s)"
        )


class PauseLearner:
    """One call's memory of the caller's pauses."""

    def __init__(self) -> None:
        self._pauses: deque[_Pause] = deque(maxlen=REMEMBERED)

    def went_on(self, seconds: float, floor: float) -> bool:
        """The caller went on after a pause of ``seconds``; True if it is evidence (at least
        :data:`RELEVANT` of ``floor``, at most :data:`LONGEST`) and was learned."""
        if not math.isfinite(seconds) or not RELEVANT * floor <= seconds <= LONGEST:
            return False
        self._pauses.append(_Pause(seconds))
        return True

    def turn_confirmed(self) -> None:
        """The caller let the agent answer their last turn: what was learned ages by a turn."""
        for pause in self._pauses:
            pause.turns_ago += 1

    def forget(self) -> None:
        self._pauses.clear()

    def wait(self, settings: AdaptiveSilence, floor: float) -> Wait:
        """The wait for the next pause, given the floor (``min_silence`` in force now)."""
        if not settings.enabled or not self._pauses:
            return Wait(floor, floor)
        weighted = sorted(
            (pause.seconds, 0.5 ** (pause.turns_ago / settings.half_life)) for pause in self._pauses
        )
        total = sum(weight for _, weight in weighted)
        level = _weighted_percentile(weighted, settings.percentile * total)
        target = min(level + settings.margin, max(settings.max_silence, floor))
        raise_by = max(0.0, target - floor) * min(1.0, total)
        return Wait(floor + raise_by, floor, level, len(weighted))


def _weighted_percentile(weighted: list[tuple[float, float]], mass: float) -> float:
    """The smallest value with at least ``mass`` of the weight at or below it (``weighted``
    sorted by value): the nearest-rank percentile, which never invents a pause nobody made."""
    seen = 0.0
    for value, weight in weighted:
        seen += weight
        if seen >= mass - 1e-12:
            return value
    return weighted[-1][0]
