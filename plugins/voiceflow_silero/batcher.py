"""Gathering small jobs from many calls into one worker-thread hand-off.

Silero scores one 32 ms window in a fraction of a millisecond; at 200 calls that is most of a
core, and on the event loop it would delay every caller's audio. Handing each window to a thread
on its own costs a thread wake-up and a loop wake-up per window, which at that rate is a cost of
its own. So every call's stream submits its window here and waits; the first submission opens a
*tick*: it lets every task that is runnable right now (other calls whose frames arrived in the
same instant) submit too, optionally waits ``gather`` seconds more, then takes what is pending
to a worker thread in one hand-off and wakes each waiter when the thread is done. While a thread
is busy, new windows pile up and leave together with the next hand-off, so batches grow with the
load by themselves and a lone call never waits for company.

Up to ``threads`` hand-offs run at once (each in its own worker thread), so the model can use as
many cores; a burst is shared evenly between the free threads. The event loop only routes jobs. There is no background task: the submitter that
opens a tick does the hand-off (it is the *leader*) and, when it is cancelled before the thread
took the batch, passes the job on to the next waiter. A thread cannot be interrupted, so a batch
that has started always finishes and wakes all its waiters; a cancelled waiter simply never
reads its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

J = TypeVar("J")


class _Ticket(Generic[J]):
    """One submitted job and the waiter's wake-up: either its batch is done, or it must lead."""

    __slots__ = ("error", "finished", "job", "lead", "wake")

    def __init__(self, job: J) -> None:
        self.job = job
        self.wake: asyncio.Future[None] | None = None
        """Set while the waiter sleeps (made only then: a leader never sleeps). A bare future of
        the loop, not an ``anyio.Event`` (an ``asyncio.Event`` around one, made through a
        backend lookup): every call waits here for every 32 ms window."""
        self.lead = False
        self.finished = False
        self.error: BaseException | None = None

    async def sleep(self) -> None:
        """Until :meth:`rouse` (at once if that already happened: the flags say so)."""
        if not (self.lead or self.finished):
            self.wake = asyncio.get_running_loop().create_future()
            await self.wake

    def rouse(self) -> None:
        if self.wake is not None:
            if not self.wake.done():
                self.wake.set_result(None)
            self.wake = None


class ThreadBatcher(Generic[J]):
    """Runs ``run_batch(jobs)`` in worker threads over every job pending at each hand-off.

    ``run_batch`` receives the jobs in submission order and fills in their results (it should
    catch a failure of one job and store it on that job, so the others still get theirs); if it
    raises, every job of that batch fails with its exception.
    """

    def __init__(self, run_batch: Callable[[Sequence[J]], None], *, threads: int = 1, gather: float = 0.0) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._run_batch = run_batch
        self._threads = threads
        self._gather = gather
        self._limiter = anyio.CapacityLimiter(threads)
        self._pending: list[_Ticket[J]] = []
        self._leader: _Ticket[J] | None = None
        """The ticket appointed to hand off what is pending, until it has taken the batch."""
        self._running = 0
        """Batches handed off and not yet finished (at most ``threads``)."""
        self._lock = threading.Lock()
        self._in_threads = 0
        self.peak_threads = 0
        """The most batches ever seen running in threads at the same moment (for tests)."""
        self.handoffs = 0
        self.jobs = 0

    @property
    def idle(self) -> bool:
        """Nothing pending, no hand-off appointed or running: every submission has settled."""
        return not self._pending and self._leader is None and self._running == 0

    async def submit(self, job: J) -> None:
        """Return once ``run_batch`` has run over ``job`` (in a thread, with whatever else was
        pending). Raises the batch's exception if ``run_batch`` failed as a whole."""
        ticket = _Ticket(job)
        self._pending.append(ticket)
        self._appoint()
        try:
            while not ticket.finished:
                if ticket.lead:
                    await self._hand_off(ticket)
                else:
                    await ticket.sleep()
        except BaseException:
            self._withdraw(ticket)
            raise
        if ticket.error is not None:
            raise ticket.error

    def _appoint(self) -> None:
        """Make the oldest pending job's waiter the leader if a thread is free and none leads."""
        if self._leader is None and self._pending and self._running < self._threads:
            leader = self._leader = self._pending[0]
            leader.lead = True
            leader.rouse()

    def _withdraw(self, ticket: _Ticket[J]) -> None:
        """A waiter is gone (cancelled): drop its job if no thread has taken it, pass on its lead."""
        if ticket in self._pending:
            self._pending.remove(ticket)
        if self._leader is ticket:
            self._leader = None
        ticket.lead = False
        self._appoint()

    async def _hand_off(self, leader: _Ticket[J]) -> None:
        """Open the tick, take every pending job to a worker thread, wake their waiters."""
        if self._gather > 0:
            await anyio.sleep(self._gather)
        else:
            await anyio.lowlevel.checkpoint()  # whoever is runnable now joins this batch
        # An even share for each free thread: a burst is scored in parallel, not one after another.
        share = -(-len(self._pending) // max(1, self._threads - self._running))
        batch, self._pending = self._pending[:share], self._pending[share:]
        self._leader, leader.lead = None, False
        self._running += 1
        self._appoint()  # the rest, if any, to the next free thread
        ran = False
        try:
            ran = await anyio.to_thread.run_sync(self._run, batch, limiter=self._limiter)
        finally:
            self._running -= 1
            if ran:
                for ticket in batch:
                    ticket.finished = True
                    ticket.rouse()
            else:  # cancelled before the thread started: the batch goes back, first in line
                self._pending[:0] = [ticket for ticket in batch if ticket is not leader]
            self._appoint()

    def _run(self, batch: list[_Ticket[J]]) -> bool:
        """In the worker thread: the batch, its failure spread over its jobs, and the counters."""
        with self._lock:
            self._in_threads += 1
            self.peak_threads = max(self.peak_threads, self._in_threads)
        try:
            self._run_batch([ticket.job for ticket in batch])
        except Exception as exc:  # noqa: BLE001 - handed to each waiter
            for ticket in batch:
                ticket.error = exc
        finally:
            with self._lock:
                self._in_threads -= 1
                self.handoffs += 1
                self.jobs += len(batch)
        return True
