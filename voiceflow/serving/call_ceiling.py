"""How many calls this process can carry, learned from its overload: a limit that is cut when
the calls fall behind and grows back step by step while they keep up (the increase-and-decrease
loop of TCP's congestion window and Netflix's concurrency-limits, with steps of a tenth).

The overload signals (:mod:`~voiceflow.serving.loop_lag`, :mod:`~voiceflow.serving.audio_lag`)
alone refuse new calls only while they read high. Under a flood of callers that makes the
process hover at the point where it is just overloaded: the moment the signal dips under its
threshold, the next callers in the queue are admitted and push it back over. Measured with
``benchmarks/soak.py`` (200 callers on a slower 2-core machine): the calls admitted heard their
replies 2.1 s late (p50). A learned limit admits by count instead: when a signal reads high, the
limit becomes 90 % of the calls in progress; new calls wait until enough have ended, and if the
signal still reads high at the limit after :data:`SETTLE` seconds, the limit is cut again. While
the signals read low and the calls are at the limit, it grows every :data:`GROW_EVERY` seconds
by a tenth (at least one call), so a machine that becomes faster (a noisy neighbour gone) is
used again within minutes, and a process cut by a burst while it held few calls is not kept
small for long. An overload with no call in progress (another process hogging the cores) cuts
nothing: there is no count to learn.

``max_sessions`` stays the operator's hard limit; the learned one is only ever below it.

Measured with the same soak (docs/deployment.md): the process held 53-72 calls, dropped none, and
its callers heard replies 0.81-0.94 s late (p50, per minute after the first), where 55 calls with
no overload at all hear them 0.67 s late.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("voiceflow.serve")

CUT = 0.9
"""The limit after an overload, as a share of the calls in progress then."""
SETTLE = 2.0
"""Seconds a cut is given to take effect before the next: the signals look back ~2 s."""
GROW_EVERY = 5.0
"""Seconds between increases while the calls keep up at the limit."""
GROWTH = 0.1
"""Each increase, as a share of the limit (at least one call)."""


class CallCeiling:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.limit: int | None = None
        """Calls the process takes at most, as learned; None until it was first overloaded."""
        self._changed_at = -math.inf

    def overloaded(self, live: int) -> None:
        """A signal reads high with ``live`` calls in progress: cut the limit, unless the last
        cut is still taking effect (too recent, or calls are still ending down to it)."""
        now = self._clock()
        if live == 0 or now - self._changed_at < SETTLE or (self.limit is not None and live > self.limit):
            return
        before, self.limit = self.limit, max(1, math.floor(live * CUT))
        self._changed_at = now
        log.warning("overloaded: fewer calls taken", limit=self.limit, was=before, calls=live)

    def allows(self, live: int) -> bool:
        """The signals read low: whether a call may join the ``live`` ones. At the limit, it
        grows (and the call is taken) once :data:`GROW_EVERY` has passed since it last changed."""
        if self.limit is None or live < self.limit:
            return True
        now = self._clock()
        if now - self._changed_at < GROW_EVERY:
            return False
        self.limit += max(1, math.floor(self.limit * GROWTH))
        self._changed_at = now
        log.info("keeping up: more calls taken", limit=self.limit)
        return True
