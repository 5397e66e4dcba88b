"""Named one-shot timers on the session clock that post :class:`TimerFired` into an inbox.

Turn-taking sets a timer at every VAD edge and every barge-in check, and re-arms some as they
fire (the endpoint timer looks again every frame while late audio is still arriving). One clock
callback (:meth:`Clock.call_at <voiceflow.clock.Clock.call_at>`) stands for the earliest
deadline of a heap of them: setting a timer is a heap push, plus moving that callback when the
new deadline comes first. Replacing or cancelling a timer only retires its generation; the stale
heap entry is skipped when it comes up. (A task sleeping towards the earliest deadline, as
before, had to be woken by cancelling its sleep: ~800 cancellations a second at 200 calls,
the most expensive thing the turn manager did.)
"""

from __future__ import annotations

import heapq
import itertools
import math

import anyio

from voiceflow.clock import Clock, TimerHandle
from voiceflow.turns.events import Inbox, Timer, TimerFired

RETRY_FULL_INBOX = 0.01
"""Seconds before a firing is posted again when the inbox is full (the call is far behind)."""


class Timers:
    """Setting a timer replaces the one of the same name; a stale firing is recognisable by its
    generation, so a timer cancelled after it fired (but before it was handled) is ignored.
    Timers due at the same moment fire in the order they were set."""

    def __init__(self, clock: Clock, inbox: Inbox) -> None:
        self._clock = clock
        self._inbox = inbox
        self._heap: list[tuple[float, int, Timer, int]] = []
        """(deadline, order set, name, generation); entries of retired generations stay until popped."""
        self._order = itertools.count()
        self._armed: dict[Timer, int] = {}
        """The generation of each timer set and neither fired, cancelled nor consumed."""
        self._generation: dict[Timer, int] = {}
        self._callback: TimerHandle | None = None
        self._callback_at = math.inf
        """When the clock callback runs (inf: none is set)."""
        self._closed = False

    def set(self, name: Timer, deadline: float) -> None:
        generation = self._retire(name)
        self._armed[name] = generation
        heapq.heappush(self._heap, (deadline, next(self._order), name, generation))
        if deadline < self._callback_at:
            self._call_at(deadline)

    def cancel(self, name: Timer) -> None:
        if name in self._armed:
            self._retire(name)

    def is_current(self, event: TimerFired) -> bool:
        return self._generation.get(event.name) == event.generation and event.name in self._armed

    def consumed(self, name: Timer) -> None:
        self._armed.pop(name, None)

    @property
    def scheduled(self) -> float | None:
        """When the clock callback runs next (None: nothing is scheduled, nothing holds the call)."""
        return None if self._callback is None else self._callback_at

    def close(self) -> None:
        """The call is over: nothing fires any more."""
        self._closed = True
        if self._callback is not None:
            self._callback.cancel()
            self._callback, self._callback_at = None, math.inf

    def _retire(self, name: Timer) -> int:
        """Retire ``name``'s current generation (its heap entry goes stale); the next one."""
        self._armed.pop(name, None)
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        return generation

    def _call_at(self, deadline: float) -> None:
        if self._closed:
            return
        if self._callback is not None:
            self._callback.cancel()
        self._callback_at = deadline
        self._callback = self._clock.call_at(deadline, self._fire)

    def _fire(self) -> None:
        """Post every timer now due, in order; then wait for the next deadline."""
        # The clock says the callback's deadline has come (a real clock may run it a fraction of
        # a millisecond early): every timer due by then fires now, or it would be set again
        # for a moment already reached.
        now = max(self._clock.now(), self._callback_at)
        self._callback, self._callback_at = None, math.inf
        heap = self._heap
        while heap:
            deadline, _, name, generation = heap[0]
            if self._armed.get(name) != generation:
                heapq.heappop(heap)  # replaced or cancelled
                continue
            if deadline > now:
                self._call_at(deadline)
                return
            try:
                # Still armed until the turn manager handles (consumes) it: a cancel meanwhile
                # retires the generation, and the event is then ignored.
                self._inbox.send_nowait(TimerFired(name, generation))
            except anyio.WouldBlock:
                self._call_at(now + RETRY_FULL_INBOX)
                return
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self.close()  # the call is over
                return
            heapq.heappop(heap)
