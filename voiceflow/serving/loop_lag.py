"""How far behind the event loop is running: the process's own measure of overload.

Every call's audio is routed by one event loop; when it falls behind, every call on it hears
the lag (late frames, late VAD decisions, late replies). ``max_sessions`` cannot know where that
point is on a given machine, and a process that keeps admitting calls past it takes every call
down with the new ones (measured by benchmarks/soak.py: 200 WebSocket callers on 2 cores left the
loop seconds behind and dropped most calls). So admission also asks this probe: a ticker that
sleeps 10 ms and notes how late it woke up. Refusing new calls while the recent lag is high
keeps the calls already admitted healthy, and the refused caller is told to retry (elsewhere).
"""

from __future__ import annotations

import time
from collections import deque

import anyio

TICK = 0.01
"""Seconds between the probe's wake-ups."""
WINDOW = 2.0
"""Seconds of recent wake-ups the verdict looks at: long enough to ignore one slow frame (a
model loading, a garbage collection), short enough to admit again soon after a burst."""


class LoopLag:
    def __init__(self, window: float = WINDOW) -> None:
        self._window = window
        self._samples: deque[tuple[float, float]] = deque()
        """(when, how late) of recent wake-ups, oldest first."""

    def note(self, at: float, late: float) -> None:
        self._samples.append((at, late))
        while self._samples and self._samples[0][0] < at - self._window:
            self._samples.popleft()

    def held(self, seconds: float, at: float | None = None) -> None:
        """The loop was held on purpose for ``seconds``, ending now (a scheduled full garbage
        collection): one slow frame, as the window means to ignore, not a stall in progress.
        Without this, the calls that knocked while it ran are refused as it ends, before the
        probe's next tick: the gap since its last tick would read as the loop still stalled
        (a 200-caller soak refused one call "running 106 ms late", a collection's pause there)."""
        self.note(time.monotonic() if at is None else at, seconds)

    def recent(self, now: float | None = None) -> float:
        """The 95th percentile of the lag over the window, in seconds (0 with no samples).

        A stalled loop records nothing while it is stalled, so the time since the last wake-up
        counts as lag too: a probe that has not run for a second is a second behind."""
        now = time.monotonic() if now is None else now
        while self._samples and self._samples[0][0] < now - self._window:
            self._samples.popleft()
        lags = sorted(late for _, late in self._samples)
        silent = now - self._samples[-1][0] - TICK if self._samples else 0.0
        p95 = lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else 0.0
        return max(p95, silent)

    async def run(self) -> None:
        """Tick until cancelled (the server's task group owns it)."""
        while True:
            before = time.monotonic()
            await anyio.sleep(TICK)
            after = time.monotonic()
            self.note(after, max(0.0, after - before - TICK))
