"""The virtual clock skips idle waits but counts work; worker threads stop when asked."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel
import pytest

from voiceflow.clock import TIMER_SLACK, RealClock, VirtualClock, current_clock, using_clock
from voiceflow.compute import StopFlag, iterate_in_thread, run_in_thread

pytestmark = pytest.mark.anyio


async def test_idle_sleeps_jump_and_keep_order() -> None:
    order: list[tuple[str, float]] = []
    started = time.monotonic()
    async with VirtualClock() as clock:

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            order.append((name, round(clock.now(), 2)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, "late", 30.0)
            tg.start_soon(sleeper, "early", 10.0)
    assert [name for name, _ in order] == ["early", "late"]
    assert order[0][1] == pytest.approx(10.0, abs=0.05) and order[1][1] == pytest.approx(30.0, abs=0.05)
    assert time.monotonic() - started < 2  # 30 virtual seconds in (much) less than 2 real ones


async def test_busy_work_counts_in_full() -> None:
    async with VirtualClock() as clock, anyio.create_task_group() as tg:
        with using_clock(clock):
            woke: list[float] = []

            async def sleeper() -> None:
                await clock.sleep(5.0)
                woke.append(clock.now())

            tg.start_soon(sleeper)
            before = clock.now()
            await run_in_thread(time.sleep, 0.3)  # a "model" computing in a worker thread
            elapsed = clock.now() - before
    assert elapsed >= 0.3  # compute is not skipped over
    assert woke and woke[0] == pytest.approx(5.0, abs=0.05)  # the idle wait still was


async def test_current_clock_follows_the_task_context() -> None:
    async with VirtualClock() as clock:
        with using_clock(clock):
            assert current_clock() is clock
    assert current_clock() is not clock


async def test_iterate_in_thread_streams_and_stops_promptly() -> None:
    produced: list[int] = []
    finished = threading.Event()

    def counter(stop: StopFlag):  # type: ignore[no-untyped-def]
        try:
            for i in range(1000):
                if stop.is_set():
                    return
                time.sleep(0.01)
                produced.append(i)
                yield i
        finally:
            finished.set()

    limiter = anyio.CapacityLimiter(1)
    got: list[int] = []
    async with VirtualClock() as clock:
        with using_clock(clock):
            stream = iterate_in_thread(counter, limiter=limiter)
            async for item in stream:
                got.append(item)
                if len(got) == 3:
                    break
            await stream.aclose()
            stopped_at = time.monotonic()
            # The next user of the same limiter only starts once the thread has really stopped.
            async with limiter:
                waited = time.monotonic() - stopped_at
    assert got == [0, 1, 2]
    assert finished.wait(1.0)
    assert len(produced) < 15  # stopped within a few items, not after 1000
    assert waited < 0.5


async def test_iterate_in_thread_raises_the_producers_error() -> None:
    def broken(stop: StopFlag):  # type: ignore[no-untyped-def]
        yield 1
        raise ValueError("model exploded")

    items: list[int] = []
    with pytest.raises(ValueError, match="model exploded"):
        async for item in iterate_in_thread(broken):
            items.append(item)
    assert items == [1]


def test_a_loop_that_ends_before_its_producer_thread_leaks_nothing() -> None:
    import gc

    handed_back = threading.Event()

    def slow(stop: StopFlag):  # type: ignore[no-untyped-def]
        yield 1
        time.sleep(0.2)  # the consumer and its event loop are gone by now
        handed_back.set()
        yield 2

    async def consume_one() -> None:
        stream = iterate_in_thread(slow)
        async for _ in stream:
            break
        await stream.aclose()

    anyio.run(consume_one)
    assert handed_back.wait(2.0)
    time.sleep(0.05)
    gc.collect()  # an unclosed stream would raise ResourceWarning here (an error under pytest)


async def test_real_time_sleeps_until_a_deadline_just_ahead() -> None:
    """Less than a millisecond ahead (the slack allowed for uvloop's early timers) is still a
    wait: a timer re-armed just short of its deadline must not fire again at once."""
    clock = RealClock()
    for ahead in (0.0002, 0.0008):
        deadline = clock.now() + ahead
        await clock.sleep_until(deadline)
        assert clock.now() >= deadline


async def test_virtual_callbacks_run_at_their_deadline_and_a_cancelled_one_never() -> None:
    ran: list[tuple[str, float]] = []
    async with VirtualClock() as clock:
        clock.call_at(20.0, lambda: ran.append(("late", clock.now())))
        cancelled = clock.call_at(5.0, lambda: ran.append(("cancelled", clock.now())))
        clock.call_at(10.0, lambda: ran.append(("early", clock.now())))
        cancelled.cancel()
        await clock.sleep_until(30.0)
    assert [name for name, _ in ran] == ["early", "late"]
    assert ran[0][1] == pytest.approx(10.0, abs=0.05) and ran[1][1] == pytest.approx(20.0, abs=0.05)


async def test_real_callbacks_run_at_their_deadline_and_a_cancelled_one_never() -> None:
    clock = RealClock()
    ran: list[tuple[str, float]] = []
    start = clock.now()
    clock.call_at(start + 0.08, lambda: ran.append(("late", clock.now())))
    clock.call_at(start + 0.03, lambda: ran.append(("cancelled", clock.now()))).cancel()
    clock.call_at(start + 0.04, lambda: ran.append(("early", clock.now())))
    clock.call_at(start - 1.0, lambda: ran.append(("past", clock.now())))  # runs at once
    await clock.sleep_until(start + 0.2)
    assert [name for name, _ in ran] == ["past", "early", "late"]
    assert ran[1][1] >= start + 0.04 - TIMER_SLACK and ran[2][1] >= start + 0.08 - TIMER_SLACK


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_time_does_not_jump_while_a_chain_of_tasks_is_still_running(use_uvloop: bool) -> None:
    """Idle means every task is blocked, found without reading the event loop's private ready
    queue: a hand-over through many tasks (each woken by the one before, more hops than the
    clock's consecutive quiet checks) all happens before the clock jumps to a sleeper."""
    pytest.importorskip("uvloop") if use_uvloop else None
    hops = 40

    async def main() -> tuple[float, float]:
        async with VirtualClock() as clock, anyio.create_task_group() as tg:
            events = [anyio.Event() for _ in range(hops + 1)]
            finished: list[float] = []

            async def hop(i: int) -> None:
                await events[i].wait()
                for _ in range(3):  # a few checkpoints of its own on the way, as real code has
                    await anyio.lowlevel.checkpoint()
                events[i + 1].set()

            async def sleeper() -> None:
                await clock.sleep(10.0)
                finished.append(clock.now())

            for i in range(hops):
                tg.start_soon(hop, i)
            tg.start_soon(sleeper)
            await anyio.lowlevel.checkpoint()
            events[0].set()
            await events[hops].wait()
            relay_done = clock.now()
        return relay_done, finished[0]

    relay_done, slept = anyio.run(main, backend_options={"use_uvloop": use_uvloop})
    assert relay_done < 1.0  # the relay ran in real time, before any jump
    assert slept == pytest.approx(10.0, abs=0.05)  # and the idle wait after it was skipped
