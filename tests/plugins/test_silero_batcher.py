"""The window batcher alone: gathering, thread bound, order, failures and cancellation.

Jobs here are plain lists that the batch function appends to, and the batch function can be held
in its thread with a :class:`threading.Event`, so every interleaving is forced, not hoped for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import anyio
import pytest

from voiceflow_silero.batcher import ThreadBatcher

pytestmark = pytest.mark.anyio


class Recorder:
    """A batch function that records each batch, marks each job done, and can be held."""

    def __init__(self, hold: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.hold = hold
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False
        self._lock = threading.Lock()

    def __call__(self, jobs: Sequence[list[int]]) -> None:
        self.entered.set()
        self.gate.wait(10)
        if self.hold:
            time.sleep(self.hold)
        with self._lock:
            self.batches.append([job[0] for job in jobs])
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("model broke")
        for job in jobs:
            job.append(1)  # done


async def submit_all(batcher: ThreadBatcher[list[int]], jobs: list[list[int]], every: float = 0.0) -> None:
    """Each job from its own task (a call), all at once or one every ``every`` seconds."""
    async with anyio.create_task_group() as tg:
        for job in jobs:
            tg.start_soon(batcher.submit, job)
            if every:
                await anyio.sleep(every)


async def test_jobs_of_one_instant_leave_in_one_hand_off() -> None:
    run = Recorder()
    batcher = ThreadBatcher(run, threads=1)
    jobs = [[i] for i in range(20)]
    await submit_all(batcher, jobs)
    assert all(job == [i, 1] for i, job in enumerate(jobs))
    assert run.batches == [list(range(20))]  # one hand-off, in submission order
    assert batcher.handoffs == 1 and batcher.jobs == 20 and batcher.idle


async def test_a_burst_is_shared_between_the_free_threads() -> None:
    run = Recorder(hold=0.02)
    batcher = ThreadBatcher(run, threads=2)
    await submit_all(batcher, [[i] for i in range(20)])
    assert sorted(run.batches) == [list(range(10)), list(range(10, 20))]
    assert batcher.peak_threads == 2 and batcher.idle


async def test_windows_pile_up_while_the_threads_are_busy_and_leave_together() -> None:
    run = Recorder(hold=0.01)
    batcher = ThreadBatcher(run, threads=1)
    await submit_all(batcher, [[i] for i in range(30)], every=0.001)  # a batch takes ten times as long
    assert sorted(i for batch in run.batches for i in batch) == list(range(30))
    assert len(run.batches) <= 6, run.batches
    assert batcher.idle


@pytest.mark.parametrize("threads", [1, 2, 3])
async def test_never_more_threads_than_configured(threads: int) -> None:
    run = Recorder(hold=0.004)
    batcher = ThreadBatcher(run, threads=threads)
    await submit_all(batcher, [[i] for i in range(60)], every=0.0003)
    assert batcher.peak_threads == threads  # all of them used, none more
    assert batcher.jobs == 60 and batcher.idle


async def test_one_callers_jobs_keep_their_order() -> None:
    run = Recorder(hold=0.001)
    batcher = ThreadBatcher(run, threads=3)
    done: dict[int, list[int]] = {0: [], 1: [], 2: []}

    async def caller(n: int) -> None:
        for i in range(20):
            job = [n * 100 + i]
            await batcher.submit(job)
            done[n].append(job[0])

    async with anyio.create_task_group() as tg:
        for n in done:
            tg.start_soon(caller, n)
    assert all(done[n] == [n * 100 + i for i in range(20)] for n in done)


async def test_a_failed_batch_fails_its_jobs_only() -> None:
    run = Recorder()
    batcher = ThreadBatcher(run, threads=1)
    run.fail_next = True
    outcomes: list[str] = []

    async def submit(i: int) -> None:
        try:
            await batcher.submit([i])
            outcomes.append("ok")
        except RuntimeError:
            outcomes.append("failed")

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(submit, i)
    assert outcomes == ["failed"] * 3
    await batcher.submit(job := [9])
    assert job == [9, 1] and batcher.idle


async def test_a_waiter_cancelled_before_the_hand_off_takes_its_job_away() -> None:
    run = Recorder()
    run.gate.clear()  # the first batch holds the only thread
    batcher = ThreadBatcher(run, threads=1)
    first, dropped, later = [0], [1], [2]
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.submit, first)
        await anyio.to_thread.run_sync(run.entered.wait, 5)
        with anyio.CancelScope() as scope:
            tg.start_soon(batcher.submit, later)
            scope.cancel()
            await batcher.submit(dropped)  # cancelled while pending
        run.gate.set()
    assert run.batches == [[0], [2]]
    assert first == [0, 1] and later == [2, 1] and dropped == [1]
    assert batcher.idle


async def test_a_leader_cancelled_while_gathering_hands_the_batch_on() -> None:
    run = Recorder()
    batcher = ThreadBatcher(run, threads=1, gather=0.05)
    leader, others = [0], [[i] for i in range(1, 5)]
    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(0.01):
            async with anyio.create_task_group() as inner:
                inner.start_soon(batcher.submit, leader)  # first in: it gathers for 50 ms
                await anyio.sleep(0)
                for job in others:
                    tg.start_soon(batcher.submit, job)
                await anyio.sleep(1)
    assert leader == [0]  # never scored: its caller is gone
    assert all(job == [i + 1, 1] for i, job in enumerate(others))
    assert run.batches == [[1, 2, 3, 4]]
    assert batcher.idle


async def test_a_call_cancelled_mid_batch_leaves_at_once_and_the_batch_finishes() -> None:
    run = Recorder()
    run.gate.clear()
    batcher = ThreadBatcher(run, threads=1)
    jobs = [[i] for i in range(5)]
    scopes: list[anyio.CancelScope] = []
    left: list[int] = []

    async def cancellable(job: list[int]) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await batcher.submit(job)
        left.append(job[0])

    async with anyio.create_task_group() as tg:
        for job in jobs[:4]:
            tg.start_soon(batcher.submit, job)  # the first leads and takes all five
        tg.start_soon(cancellable, jobs[4])
        await anyio.to_thread.run_sync(run.entered.wait, 5)
        scopes[0].cancel()
        await anyio.sleep(0.02)
        assert left == [4]  # gone while its batch is still held in the thread
        run.gate.set()
    assert run.batches == [[0, 1, 2, 3, 4]]
    assert all(job[1:] == [1] for job in jobs)  # the batch ran in full, the cancelled job with it
    assert batcher.idle


async def test_other_tasks_run_while_a_batch_computes() -> None:
    run = Recorder()
    run.gate.clear()
    batcher = ThreadBatcher(run, threads=1)
    job = [0]
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.submit, job)
        await anyio.to_thread.run_sync(run.entered.wait, 5)  # the batch is in its thread...
        assert job == [0]  # ...and this task runs meanwhile
        run.gate.set()
    assert job == [0, 1]
