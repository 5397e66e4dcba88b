"""Named one-shot timers on the session clock that post :class:`TimerFired` into an inbox.

One task per call fires them all, from a heap of deadlines. Turn-taking sets a timer at every
VAD edge and every barge-in check, and re-arms some as they fire: a task of their own each
(spawned, given a cancel scope, cancelled on replacement) cost more of a busy server's event
loop than the timers' work. Here setting a timer is a heap push, and wakes the firing task only
when the new deadline comes before the one it sleeps towards; replacing or cancelling one only
retires its generation, and the stale heap entry is skipped when it comes up.
"""

from __future__ import annotations

import heapq
import itertools
import math

import anyio
from anyio.abc import ObjectSendStream

from voiceflow.clock import Clock
from voiceflow.tasks import TaskGroup
from voiceflow.turns.events import Event, Timer, TimerFired


class Timers:
    """Setting a timer replaces the one of the same name; a stale firing is recognisable by its
    generation, so a timer cancelled after it fired (but before it was handled) is ignored.
    Timers due at the same moment fire in the order they were set."""

    def __init__(self, clock: Clock, task_group: TaskGroup, inbox: ObjectSendStream[Event]) -> None:
        self._clock = clock
        self._inbox = inbox
        self._heap: list[tuple[float, int, Timer, int]] = []
        """(deadline, order set, name, generation); entries of retired generations stay until popped."""
        self._order = itertools.count()
        self._armed: dict[Timer, int] = {}
        """The generation of each timer set and neither fired, cancelled nor consumed."""
        self._generation: dict[Timer, int] = {}
        self._sleeping_until = math.inf
        self._wake: anyio.CancelScope | None = None
        """The firing task's sleep, cancelled to wake it for an earlier deadline."""
        self._changed = anyio.Event()
        task_group.start_soon(self._fire, name="timers")

    def set(self, name: Timer, deadline: float) -> None:
        generation = self._retire(name)
        self._armed[name] = generation
        heapq.heappush(self._heap, (deadline, next(self._order), name, generation))
        if deadline < self._sleeping_until:
            if self._wake is not None:
                self._wake.cancel()
            self._changed.set()

    def cancel(self, name: Timer) -> None:
        if name in self._armed:
            self._retire(name)

    def is_current(self, event: TimerFired) -> bool:
        return self._generation.get(event.name) == event.generation and event.name in self._armed

    def consumed(self, name: Timer) -> None:
        self._armed.pop(name, None)

    def _retire(self, name: Timer) -> int:
        """Retire ``name``'s current generation (its heap entry goes stale); the next one."""
        self._armed.pop(name, None)
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        return generation

    async def _fire(self) -> None:
        heap = self._heap
        while True:
            while heap and self._armed.get(heap[0][2]) != heap[0][3]:
                heapq.heappop(heap)  # replaced or cancelled
            if not heap:
                self._changed = anyio.Event()
                await self._changed.wait()
                continue
            deadline, _, name, generation = heap[0]
            if deadline > self._clock.now():
                self._sleeping_until = deadline
                with anyio.CancelScope() as self._wake:
                    await self._clock.sleep_until(deadline)
                self._wake, self._sleeping_until = None, math.inf
                continue  # due now, or woken for an earlier one: look again
            heapq.heappop(heap)
            # Still armed until the turn manager handles (consumes) it: a cancel meanwhile
            # retires the generation, and the event is then ignored.
            await self._inbox.send(TimerFired(name, generation))
