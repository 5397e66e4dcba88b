"""The turn manager's named timers: one clock callback for all of them, on a virtual clock (so the
times are exact on any machine), and on the real one."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voiceflow.clock import TIMER_SLACK, RealClock, VirtualClock
from voiceflow.frame_queue import FrameQueue
from voiceflow.tasks import create_task_group
from voiceflow.turns.events import Event, Timer, TimerFired
from voiceflow.turns.timers import Timers

pytestmark = pytest.mark.anyio


async def fired(clock: VirtualClock, plan: list[tuple[float, str, Timer, float]], until: float) -> list[tuple[float, Timer]]:
    """Run ``plan`` ((at, "set" | "cancel", timer, deadline)) and collect (time, timer) of
    every firing still current when the inbox hands it over, up to ``until``."""
    send, receive = anyio.create_memory_object_stream[Event](16)
    got: list[tuple[float, Timer]] = []
    with send, receive:
        await _run(clock, plan, until, send, receive, got)
    return got


async def _run(clock: VirtualClock, plan: list[tuple[float, str, Timer, float]], until: float,
               send: MemoryObjectSendStream[Event], receive: MemoryObjectReceiveStream[Event],
               got: list[tuple[float, Timer]]) -> None:
    async with create_task_group() as tg:
        timers = Timers(clock, send)

        async def drive() -> None:
            for at, action, timer, deadline in plan:
                await clock.sleep_until(at)
                if action == "set":
                    timers.set(timer, deadline)
                else:
                    timers.cancel(timer)

        async def collect() -> None:
            async for event in receive:
                assert isinstance(event, TimerFired)
                if timers.is_current(event):
                    timers.consumed(event.name)
                    got.append((round(clock.now(), 3), event.name))

        tg.start_soon(drive)
        tg.start_soon(collect)
        await clock.sleep_until(until)
        tg.cancel_scope.cancel()


async def test_timers_fire_at_their_deadlines_in_order() -> None:
    async with VirtualClock() as clock:
        got = await fired(clock, [
            (0.0, "set", Timer.SILENCE, 5.0),
            (0.0, "set", Timer.ENDPOINT, 1.0),
            (0.5, "set", Timer.MAX_WAIT, 2.0),
        ], until=10.0)
    assert got == [(pytest.approx(1.0, abs=0.02), Timer.ENDPOINT), (pytest.approx(2.0, abs=0.02), Timer.MAX_WAIT),
                   (pytest.approx(5.0, abs=0.02), Timer.SILENCE)]


async def test_an_earlier_deadline_set_later_fires_first() -> None:
    async with VirtualClock() as clock:
        got = await fired(clock, [(0.0, "set", Timer.SILENCE, 8.0), (1.0, "set", Timer.ENDPOINT, 1.5)], until=10.0)
    assert [name for _, name in got] == [Timer.ENDPOINT, Timer.SILENCE]
    assert got[0][0] == pytest.approx(1.5, abs=0.02)


async def test_setting_a_timer_again_replaces_it_and_cancel_retires_it() -> None:
    async with VirtualClock() as clock:
        got = await fired(clock, [
            (0.0, "set", Timer.ENDPOINT, 1.0),
            (0.5, "set", Timer.ENDPOINT, 3.0),   # moved later: nothing at 1.0
            (0.6, "set", Timer.BARGE_IN, 2.0),
            (1.5, "cancel", Timer.BARGE_IN, 0.0),
        ], until=10.0)
    assert got == [(pytest.approx(3.0, abs=0.02), Timer.ENDPOINT)]


async def test_a_firing_cancelled_before_it_is_handled_is_not_current() -> None:
    send, receive = anyio.create_memory_object_stream[Event](16)
    with send, receive:
        async with VirtualClock() as clock, create_task_group() as tg:
            timers = Timers(clock, send)
            timers.set(Timer.ENDPOINT, 1.0)
            event = await receive.receive()  # fired, not yet handled ...
            timers.cancel(Timer.ENDPOINT)  # ... when the manager cancels it
            assert isinstance(event, TimerFired) and not timers.is_current(event)
            timers.set(Timer.ENDPOINT, clock.now() + 1.0)
            again = await receive.receive()
            assert isinstance(again, TimerFired) and timers.is_current(again)
            tg.cancel_scope.cancel()


async def test_setting_a_timer_starts_no_task() -> None:
    send, receive = anyio.create_memory_object_stream[Event](16)
    with send, receive:
        async with VirtualClock() as clock, create_task_group() as tg:
            timers = Timers(clock, send)
            await anyio.lowlevel.checkpoint()
            before = len(anyio.get_running_tasks())
            for i in range(50):
                timers.set(Timer.BARGE_IN, 100.0 + i)
                timers.set(Timer.ENDPOINT, 200.0 - i)
            assert len(anyio.get_running_tasks()) == before
            tg.cancel_scope.cancel()


async def test_on_the_real_clock_timers_fire_in_order_and_not_before_their_deadline() -> None:
    clock = RealClock()
    inbox = FrameQueue[Event](16)
    timers = Timers(clock, inbox)
    start = clock.now()
    timers.set(Timer.SILENCE, start + 0.12)
    timers.set(Timer.ENDPOINT, start + 0.05)
    timers.set(Timer.MAX_WAIT, start + 0.05)  # the same moment: after ENDPOINT, set first
    got = []
    for _ in range(3):
        event = await inbox.receive()
        assert isinstance(event, TimerFired) and timers.is_current(event)
        timers.consumed(event.name)
        got.append((event.name, clock.now() - start))
    assert [name for name, _ in got] == [Timer.ENDPOINT, Timer.MAX_WAIT, Timer.SILENCE]
    assert got[0][1] >= 0.05 - TIMER_SLACK and got[2][1] >= 0.12 - TIMER_SLACK


async def test_a_closed_timer_set_fires_nothing_more() -> None:
    async with VirtualClock() as clock:
        inbox = FrameQueue[Event](16)
        timers = Timers(clock, inbox)
        timers.set(Timer.MAX_CALL, 5.0)
        assert timers.scheduled == 5.0
        timers.close()
        timers.set(Timer.ENDPOINT, 1.0)  # a late set, as the call ends, is ignored too
        await clock.sleep_until(10.0)
        assert len(inbox) == 0


async def test_a_full_inbox_delays_a_firing_and_loses_none() -> None:
    async with VirtualClock() as clock:
        inbox = FrameQueue[Event](1)
        inbox.send_nowait(TimerFired(Timer.KEYPAD, 0))  # the manager is behind: the inbox is full
        timers = Timers(clock, inbox)
        timers.set(Timer.ENDPOINT, 1.0)
        timers.set(Timer.SILENCE, 1.0)
        await clock.sleep_until(2.0)
        assert inbox.receive_nowait() == TimerFired(Timer.KEYPAD, 0)
        names = []
        for _ in range(2):
            with anyio.fail_after(5):
                event = await inbox.receive()
            assert isinstance(event, TimerFired) and timers.is_current(event)
            names.append(event.name)
        assert names == [Timer.ENDPOINT, Timer.SILENCE]


async def test_an_ended_call_stops_its_timers() -> None:
    async with VirtualClock() as clock:
        inbox = FrameQueue[Event](4)
        timers = Timers(clock, inbox)
        timers.set(Timer.ENDPOINT, 1.0)
        timers.set(Timer.SILENCE, 3.0)
        inbox.close()  # the turn manager has finished
        await clock.sleep_until(4.0)
        timers.set(Timer.MAX_WAIT, 5.0)
        assert timers.scheduled is None  # nothing scheduled holds the call any more
