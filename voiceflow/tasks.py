"""Task groups whose cancelled tasks do not outlive themselves in reference cycles.

A call ends by cancelling its tasks (the transport's reader and writer, the recogniser's feed,
timers, a reply still running: about fifteen of them), and so does every barge-in. On anyio's
asyncio backend each task that ends *by* that cancellation leaves its ``CancelledError`` in a
reference cycle: the task group's completion callback catches the error in a local variable, and
the error's traceback holds that callback's frame. The error's traceback also runs through every
frame the task was suspended in, and their locals are the call itself: its session, transport,
turn manager, buffers. Reference counting cannot free a cycle, so all of it waited for the
collector's full pass, which a busy serving process makes rare (see
:mod:`voiceflow.serving.memory`): measured with WebSocket callers, ~730 objects a call, and a
serve process under 200 callers grew ~27 MB a minute for as long as calls kept ending.

:func:`create_task_group` is anyio's task group with one difference: a task started with
:meth:`~TaskGroup.start_soon` that is cancelled returns quietly instead of raising
(``except <cancelled>: return`` at its outermost frame, with nothing bound to the error). The
task ends then and there as it would have, its error and frames are freed at once, and nothing
else changes: anyio does not collect a child's cancellation as an error, the group still waits
for every task, and a task's real exceptions propagate as before. :meth:`~TaskGroup.start` is
left as anyio has it: a task cancelled before it reported started must still fail ``start``.

voiceflow's own code and its built-in plugins use this instead of ``anyio.create_task_group``
(ruff's ``banned-api`` says so); a plugin's long-lived tasks should too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVarTuple, Unpack

import anyio
import anyio.abc

__all__ = ["TaskGroup", "create_task_group"]

Args = TypeVarTuple("Args")


async def _ending_quietly(func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
    try:
        await func(*args)
    except anyio.get_cancelled_exc_class():
        return  # nothing may hold the error: see the module's docstring


def _task_name(func: Callable[..., Any], name: object) -> str:
    if name is not None:
        return str(name)
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if qualname is None:
        return repr(func)
    return f"{module}.{qualname}" if module else str(qualname)


class TaskGroup:
    """anyio's task group, whose ``start_soon`` tasks end quietly when cancelled (module docs).

    Not a subclass of ``anyio.abc.TaskGroup``: that class routes ``start_soon`` through a
    ``create_task`` whose task handles would report such a task as finished, not cancelled."""

    def __init__(self) -> None:
        self._group: anyio.abc.TaskGroup = anyio.create_task_group()  # noqa: TID251 - the one place that may
        self.cancel_scope: anyio.CancelScope = self._group.cancel_scope

    def start_soon(
        self, func: Callable[[Unpack[Args]], Awaitable[Any]], *args: *Args, name: object = None
    ) -> None:
        self._group.start_soon(_ending_quietly, func, args, name=_task_name(func, name))

    async def start(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: object, name: object = None) -> Any:
        return await self._group.start(func, *args, name=name)

    async def __aenter__(self) -> TaskGroup:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        try:
            return await self._group.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            # The error re-raised from here carries this frame in its traceback: it must not
            # also be among the frame's locals (a cycle again).
            del exc_val, exc_tb


def create_task_group() -> TaskGroup:
    """A task group for a call's tasks: ``async with create_task_group() as tg: ...``."""
    return TaskGroup()
