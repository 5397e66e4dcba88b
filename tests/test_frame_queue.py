"""The caller-audio pump's queue to the recogniser's feed: order, bounds, closing, and the one
property it exists for (a queued frame is handed over without a trip through the event loop)."""

from __future__ import annotations

import anyio
import pytest

from voiceflow.frame_queue import FrameQueue

pytestmark = pytest.mark.anyio


async def test_items_come_out_in_order_and_the_bound_holds() -> None:
    queue = FrameQueue[int](3)
    for i in range(3):
        queue.send_nowait(i)
    with pytest.raises(anyio.WouldBlock):
        queue.send_nowait(3)
    assert [await queue.receive() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(anyio.WouldBlock):
        queue.receive_nowait()


async def test_a_queued_item_is_taken_without_yielding_to_the_loop() -> None:
    queue = FrameQueue[str](4)
    others_ran = False

    async def other() -> None:
        nonlocal others_ran
        others_ran = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        queue.send_nowait("frame")
        assert await queue.receive() == "frame"
        assert not others_ran  # no checkpoint: the other task has not had a turn
        await anyio.lowlevel.checkpoint()
        assert others_ran


async def test_a_waiting_consumer_is_woken_by_a_send() -> None:
    queue = FrameQueue[int](4)
    got: list[int] = []

    async def consume() -> None:
        async for item in queue:
            got.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        queue.send_nowait(7)
        await anyio.wait_all_tasks_blocked()
        assert got == [7]
        queue.send_nowait(8)
        queue.close()
    assert got == [7, 8]  # what was queued before the close still arrives, then the loop ends


async def test_closing_ends_a_waiting_consumer_and_refuses_sends() -> None:
    queue = FrameQueue[int](4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                with pytest.raises(anyio.EndOfStream):
                    await queue.receive()

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            queue.close()
    with pytest.raises(anyio.ClosedResourceError):
        queue.send_nowait(1)
    with pytest.raises(anyio.EndOfStream):
        queue.receive_nowait()


async def test_a_cancelled_wait_leaves_the_queue_usable() -> None:
    queue = FrameQueue[int](4)
    with anyio.move_on_after(0.01):
        await queue.receive()
    queue.send_nowait(5)
    assert await queue.receive() == 5


async def test_it_has_one_consumer() -> None:
    queue = FrameQueue[int](4)

    async def first() -> None:
        with pytest.raises(anyio.EndOfStream):
            await queue.receive()

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="one consumer"):
            await queue.receive()
        queue.close()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameQueue[int](0)


async def test_send_with_room_does_not_yield_and_a_full_queue_waits_for_the_consumer() -> None:
    queue = FrameQueue[int](2)
    sent: list[int] = []

    async def produce() -> None:
        for i in range(4):
            await queue.send(i)
            sent.append(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        await anyio.wait_all_tasks_blocked()
        assert sent == [0, 1]  # the third waits for room
        assert await queue.receive() == 0
        await anyio.wait_all_tasks_blocked()
        assert sent == [0, 1, 2]
        assert [await queue.receive() for _ in range(3)] == [1, 2, 3]


async def test_a_sender_waiting_for_room_is_refused_when_the_queue_closes() -> None:
    queue = FrameQueue[int](1)
    queue.send_nowait(0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                with pytest.raises(anyio.ClosedResourceError):
                    await queue.send(1)

            tg.start_soon(produce)
            await anyio.wait_all_tasks_blocked()
            queue.close()
    assert queue.receive_nowait() == 0  # what was queued is still delivered


async def test_clear_drops_what_is_queued_and_makes_room() -> None:
    queue = FrameQueue[int](2)
    queue.send_nowait(1)
    queue.send_nowait(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.send, 3)
        await anyio.wait_all_tasks_blocked()
        assert queue.clear() == 2
    assert queue.receive_nowait() == 3
    assert queue.clear() == 0
