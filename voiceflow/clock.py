"""Session clocks: real time for live calls, skip-ahead virtual time for files and tests.

Every timestamp in a session comes from its clock, so the same code measures a live phone call and
a WAV file replayed faster than real time.

:class:`VirtualClock` is not a frozen "mock" clock. Model inference and provider I/O really take
time, and that time is exactly what latency measurements are about, so virtual time *flows at the
real rate* while anything is working. It only jumps when the whole session is idle (nothing runnable,
no compute or provider call in flight) and someone is waiting for a deadline: the silence at the end
of a recording, the pacing of caller frames, the playout of agent audio. A 30 s call with 2 s of
compute finishes in about 2 s and reports the same mouth-to-ear times a live run would.

Work that the clock cannot see (a thread, a socket) must be announced with :meth:`Clock.busy`; the
runtime does this around every provider call and :func:`voiceflow.compute.run_in_thread` does it for
worker threads, so plugin authors rarely need it directly.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import inspect
import itertools
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Protocol, Self

import anyio
import anyio.lowlevel

from voiceflow.tasks import TaskGroup, create_task_group

_current: ContextVar[Clock] = ContextVar("voiceflow_clock")


class Clock(Protocol):
    """What the runtime and providers need from time."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` (a plain function, on the event loop) once the clock reaches
        ``deadline``. For code that must wake at moments that keep moving (the turn manager's
        timers): re-arming a callback costs a heap push, where waking a sleeping task early
        costs a cancellation."""
        ...

    def busy(self) -> AbstractContextManager[None]:
        """Mark work in flight that the clock cannot see; virtual time will not skip past it."""
        ...


class TimerHandle(Protocol):
    """A callback set with :meth:`Clock.call_at`."""

    def cancel(self) -> None:
        """It will not run (no effect once it has)."""
        ...


def current_clock() -> Clock:
    """The clock of the session this task belongs to (real time outside any session)."""
    return _current.get(_REAL)


@contextmanager
def using_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the current clock for this task and the tasks it starts."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


TIMER_SLACK = 0.001
"""How early a real-time sleep may end: the resolution of uvloop's timers."""


class RealClock:
    """Wall-clock time: the system's monotonic clock, read when asked.

    Not the event loop's time: uvloop's is the time its current iteration began, in whole
    milliseconds, so on a busy loop every mark stamped in one iteration would read the same,
    earlier time, and latencies would come out short. For the same reason a timer can fire up to
    a millisecond before its deadline there (its timers count whole milliseconds from that
    time); :meth:`sleep_until` sleeps again only if more than :data:`TIMER_SLACK` is left, since
    a second timer for every 20 ms frame would cost more than the millisecond it saves. (With
    asyncio's own loop, timers do not fire early and this never happens.)"""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        # asyncio.sleep, which anyio.sleep calls after looking up the async backend: this is the
        # wait of every paced frame of every call. (Cancellation is anyio's as ever: it cancels
        # the task, and the sleep's future with it.)
        left = deadline - time.monotonic()
        if left <= 0:
            await asyncio.sleep(0)  # a sleep is always a checkpoint
            return
        await asyncio.sleep(left)  # at least once: a timer re-armed just short of its deadline waits
        while (left := deadline - time.monotonic()) > TIMER_SLACK:
            await asyncio.sleep(left)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(time.monotonic() + seconds)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        return _RealTimer(asyncio.get_running_loop(), deadline, callback)

    def busy(self) -> AbstractContextManager[None]:
        # Real time needs no announcement; one shared no-op context (entered for every frame
        # and every streamed item, a generator-based one costs more than the work it wraps).
        return _NOTHING

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


_NOTHING: AbstractContextManager[None] = nullcontext()
_REAL = RealClock()


class _RealTimer:
    """A loop timer towards a deadline on the monotonic clock; like :meth:`RealClock.sleep_until`,
    it runs within :data:`TIMER_SLACK` of the deadline, and sets itself again if woken earlier."""

    __slots__ = ("_loop", "_deadline", "_callback", "_handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float, callback: Callable[[], None]) -> None:
        self._loop, self._deadline, self._callback = loop, deadline, callback
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._arm()

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        self._handle = (self._loop.call_later(left, self._run) if left > TIMER_SLACK
                        else self._loop.call_soon(self._run))

    def _run(self) -> None:
        if self._deadline - time.monotonic() > TIMER_SLACK:
            self._arm()
            return
        self._handle = None
        self._callback()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class VirtualClock:
    """Time that flows at the real rate while work is in flight and jumps over idle waits.

    Use it as an async context manager: it runs a small driver task that wakes sleepers, either
    when real time reaches their deadline or, when the session is idle, by jumping ahead.
    """

    def __init__(self, start: float = 0.0, *, idle_checks: int = 3) -> None:
        self._start = start
        self._offset = 0.0
        self._real_origin: float | None = None
        self._sleepers: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._changed = anyio.Event()
        self._idle_checks = idle_checks
        self._task_group: TaskGroup | None = None
        self._waits: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Future[Any]] = weakref.WeakKeyDictionary()
        self.jumped = 0.0
        """Total virtual seconds skipped so far (for reports: how much faster than real time)."""

    def now(self) -> float:
        if self._real_origin is None:
            return self._start + self._offset
        return self._start + self._offset + (anyio.current_time() - self._real_origin)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self.now():
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        self.call_at(deadline, woken.set)
        await woken.wait()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _VirtualTimer(callback)
        heapq.heappush(self._sleepers, (deadline, next(self._seq), timer))
        self._poke()
        return timer

    @contextmanager
    def busy(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._poke()

    def _poke(self) -> None:
        self._changed.set()

    async def __aenter__(self) -> Self:
        self._real_origin = anyio.current_time()
        self._task_group = create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._drive, name="voiceflow-virtual-clock")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        self._task_group = None

    async def _drive(self) -> None:
        while True:
            self._changed = anyio.Event()
            self._wake_due()
            if not self._sleepers:
                await self._changed.wait()
                continue
            if self._busy == 0 and await self._is_idle():
                self._drop_cancelled()
                if self._busy == 0 and self._sleepers:
                    skip = self._sleepers[0][0] - self.now()
                    if skip > 0:
                        self._offset += skip
                        self.jumped += skip
                continue
            # Work is in flight: let real time pass until the next deadline or a change (a new
            # sleeper, work finishing). Poll briefly when the loop itself is the busy one.
            delay = self._sleepers[0][0] - self.now()
            with anyio.move_on_after(max(0.0, min(delay, 0.05 if self._busy else 0.002))):
                await self._changed.wait()

    def _wake_due(self) -> None:
        now = self.now()
        sleepers = self._sleepers
        while sleepers and (sleepers[0][0] <= now or sleepers[0][2].callback is None):
            callback = heapq.heappop(sleepers)[2].callback
            if callback is not None:
                callback()

    def _drop_cancelled(self) -> None:
        """Nobody waits for a cancelled timer's deadline: time must not jump to it."""
        while self._sleepers and self._sleepers[0][2].callback is None:
            heapq.heappop(self._sleepers)

    async def _is_idle(self) -> bool:
        """True once every other task is blocked (checked a few times in a row).

        Tasks the driver has just woken are runnable for a moment: yielding lets them run and
        block again, which is far cheaper than giving up and waiting in real time.
        """
        quiet = 0
        for _ in range(64):
            await anyio.lowlevel.checkpoint()
            if self._busy:
                return False
            if _another_task_can_run(self._waits):
                quiet = 0
                continue
            quiet += 1
            if quiet >= self._idle_checks:
                return True
        return False


class _VirtualTimer:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None  # its heap entry is dropped when it comes up


def _another_task_can_run(waits: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Future[Any]]) -> bool:
    """Whether a task other than this one is runnable: not started yet, or suspended on a
    future that is already done (its wake-up is queued), or at a bare yield (``sleep(0)``).

    Read through the awaitables' documented introspection (``cr_await``, ``gi_yieldfrom``,
    ``ag_await``, :func:`gc.get_referents`) down to the innermost awaited object, so it works on
    any asyncio event loop without touching its ready queue. ``waits`` remembers the future each
    task was found blocked on: until that future is done the task cannot have moved, so most
    checks cost one ``done()`` per task.
    """
    this = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is this or task.done():
            continue
        known = waits.get(task)
        if known is not None and not known.done():
            continue
        future = _awaited_future(task.get_coro())
        if future is None or future.done():
            waits.pop(task, None)
            return True
        waits[task] = future
    return False


def _awaited_future(awaitable: object) -> asyncio.Future[Any] | None:
    """The future a suspended coroutine waits on at the bottom of its chain of awaits, or None
    if it is runnable (not started, or suspended at a bare yield) or waits on something this
    cannot see into (then the clock waits in real time rather than jump over the work)."""
    inner: object = awaitable
    for _ in range(256):  # a chain of awaits is a few dozen deep; guard against a cycle
        if isinstance(inner, asyncio.Future):
            return inner
        if inspect.iscoroutine(inner):
            if inspect.getcoroutinestate(inner) == inspect.CORO_CREATED:
                return None
            following = inner.cr_await
        elif inspect.isgenerator(inner):
            if inspect.getgeneratorstate(inner) == inspect.GEN_CREATED:
                return None
            following = inner.gi_yieldfrom
        elif inspect.isasyncgen(inner):
            following = inner.ag_await
        else:
            # The awaitables implemented in C (a Future's ``__await__`` iterator, an async
            # generator's ``asend``) have no attributes; what they wait on is what they refer to.
            referents = gc.get_referents(inner)
            following = next((ref for ref in referents if isinstance(ref, asyncio.Future)), None) or next(
                (ref for ref in referents if inspect.isasyncgen(ref) or inspect.iscoroutine(ref)
                 or inspect.isgenerator(ref)), None)
        if following is None:
            return None
        inner = following
    return None


@asynccontextmanager
async def open_clock(kind: str) -> AsyncIterator[Clock]:
    """Open a clock by name: ``"real"`` or ``"virtual"``."""
    clock: RealClock | VirtualClock = VirtualClock() if kind == "virtual" else RealClock()
    async with clock:
        yield clock
