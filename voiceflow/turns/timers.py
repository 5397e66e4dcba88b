"""Named one-shot timers on the session clock that post :class:`TimerFired` into an inbox."""

from __future__ import annotations

import anyio
from anyio.abc import ObjectSendStream

from voiceflow.clock import Clock
from voiceflow.tasks import TaskGroup
from voiceflow.turns.events import Event, Timer, TimerFired


class Timers:
    """Setting a timer replaces the one of the same name; a stale firing is recognisable by its
    generation, so a timer cancelled after it fired (but before it was handled) is ignored."""

    def __init__(self, clock: Clock, task_group: TaskGroup, inbox: ObjectSendStream[Event]) -> None:
        self._clock = clock
        self._tg = task_group
        self._inbox = inbox
        self._scopes: dict[Timer, anyio.CancelScope] = {}
        self._generation: dict[Timer, int] = {}

    def set(self, name: Timer, deadline: float) -> None:
        self.cancel(name)
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        scope = anyio.CancelScope()
        self._scopes[name] = scope

        async def fire() -> None:
            with scope:
                await self._clock.sleep_until(deadline)
                await self._inbox.send(TimerFired(name, generation))

        self._tg.start_soon(fire, name=f"timer:{name.value}")

    def cancel(self, name: Timer) -> None:
        scope = self._scopes.pop(name, None)
        if scope is not None:
            scope.cancel()
            self._generation[name] = self._generation.get(name, 0) + 1

    def is_current(self, event: TimerFired) -> bool:
        return self._generation.get(event.name) == event.generation and event.name in self._scopes

    def consumed(self, name: Timer) -> None:
        self._scopes.pop(name, None)
