"""A stream's item deadlines (``first_byte``, ``idle``), kept by one timer per provider attempt
(``voiceflow.runtime.chain.StallWatch``) instead of a cancel scope per item: a stall is caught
on time wherever it happens, a consumer that takes its time is never blamed for it, and the
deadline's cancellation never swallows, or leaks into, anyone else's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from voiceflow.clock import RealClock
from voiceflow.config.base import AttemptTimeouts
from voiceflow.runtime.chain import Chain, StageFailed

pytestmark = pytest.mark.anyio


@dataclass
class _Config:
    timeouts: AttemptTimeouts


class Paced:
    """A provider stand-in: ``items`` items ``gap`` seconds apart, then (``stall``) nothing, ever."""

    def __init__(self, name: str, *, items: int, gap: float, stall: bool = False,
                 first_byte: float = 5.0, idle: float = 5.0) -> None:
        self.name = name
        self.config = _Config(AttemptTimeouts(first_byte=first_byte, idle=idle))
        self.items, self.gap, self.stall = items, gap, stall

    async def stream(self) -> AsyncIterator[int]:
        for i in range(self.items):
            await anyio.sleep(self.gap)
            yield i
        if self.stall:
            await anyio.sleep_forever()


def _chain(*providers: Paced) -> Chain[Any]:
    return Chain("llm", list(providers), RealClock())


async def test_a_stall_after_many_quick_items_fails_the_stream_one_idle_timeout_after_the_last() -> None:
    chain = _chain(Paced("staller", items=30, gap=0.01, stall=True, idle=0.3))
    got: list[int] = []
    last = 0.0
    with pytest.raises(StageFailed) as failed:
        async for item in chain.stream(lambda p: p.stream()):
            got.append(item)
            last = anyio.current_time()
    waited = anyio.current_time() - last
    assert got == list(range(30))
    assert "mid-stream: no output within 0.3 s" in str(failed.value)
    assert waited >= 0.3 - 0.002  # never before its deadline (a busy machine may be later)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the deadline's cancel was withdrawn
    await anyio.sleep(0.01)  # and nothing is left to interrupt the next wait


async def test_a_consumer_slower_than_the_idle_timeout_is_not_taken_for_a_stalled_provider() -> None:
    chain = _chain(Paced("quick", items=4, gap=0.0, idle=0.05))
    got = []
    async for item in chain.stream(lambda p: p.stream()):
        got.append(item)
        await anyio.sleep(0.15)  # three idle timeouts of work on each item
    assert got == [0, 1, 2, 3]


async def test_a_provider_silent_past_first_byte_makes_way_for_the_next() -> None:
    chain = _chain(Paced("mute", items=0, gap=0.0, stall=True, first_byte=0.1),
                   Paced("backup", items=3, gap=0.0))
    attempts = []
    chain.observers.append(attempts.append)
    got = [item async for item in chain.stream(lambda p: p.stream())]
    assert got == [0, 1, 2]
    assert [(a.provider, a.error) for a in attempts] == [("mute", "no output within 0.1 s"), ("backup", None)]


async def test_someone_elses_cancellation_while_waiting_goes_through() -> None:
    chain = _chain(Paced("slow", items=1, gap=5.0, idle=5.0, first_byte=5.0))
    with anyio.move_on_after(0.1) as outer:
        async for _ in chain.stream(lambda p: p.stream()):
            pytest.fail("no item comes within 0.1 s")
    assert outer.cancelled_caught


async def test_a_cancellation_that_meets_the_deadline_is_not_swallowed_and_leaves_no_trace() -> None:
    """An outer deadline and the stream's, due together: whichever wins, the outer one is never
    lost, and the task is not left marked as cancelling."""
    outcomes = set()
    for _ in range(20):
        chain = _chain(Paced("staller", items=0, gap=0.0, stall=True, first_byte=0.05))
        with anyio.CancelScope(deadline=anyio.current_time() + 0.05) as outer:
            try:
                async for _ in chain.stream(lambda p: p.stream()):
                    pass
            except StageFailed:
                outcomes.add("stage failed")
                await anyio.sleep(1.0)  # the outer deadline still interrupts this
                pytest.fail("the outer cancellation was swallowed")
        if outer.cancelled_caught:
            outcomes.add("cancelled")
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
    assert outcomes <= {"stage failed", "cancelled"} and "cancelled" in outcomes


class Swallower(Paced):
    """A provider that catches the cancellation of its wait and produces an item anyway."""

    async def stream(self) -> AsyncIterator[int]:
        try:
            await anyio.sleep(1.0)
        except asyncio.CancelledError:
            pass
        yield 7


async def test_a_provider_that_swallows_the_deadline_leaves_the_task_clean() -> None:
    chain = _chain(Swallower("swallower", items=0, gap=0.0, first_byte=0.05))
    got = [item async for item in chain.stream(lambda p: p.stream())]
    assert got == [7]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await anyio.sleep(0.01)
