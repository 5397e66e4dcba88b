"""A bounded queue between two tasks of one call, one loop trip per item.

anyio's memory object streams yield to the event loop at the start of every ``send`` and every
``receive`` (a checkpoint). On a per-frame path that is two extra trips through the loop for
each 20 ms frame: the sender's checkpoint, and the consumer's checkpoint before it finds the
queue empty and waits again. With 200 calls those trips alone are ~20,000 task steps a second,
measured at ~10 µs of loop time per item on top of the hand-over itself. :class:`FrameQueue`
hands over what is queued without yielding and waits only when it must (the consumer when there
is nothing, a sender when it is full): one trip per item, the consumer's wake.

It is public plugin API: transports carry caller frames, agent frames and outgoing messages
through it. It has the errors of a memory object stream (``WouldBlock`` when full,
``EndOfStream`` once closed and empty, ``ClosedResourceError`` when sending after close), one
consumer, and any number of senders.

Because ``send`` does not yield when there is room, a task that only ever sends into a queue
with room never gives the loop a turn; every sender in voiceflow also awaits its input (a
socket, a timer, another queue), which is where it yields.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class FrameQueue(Generic[T]):
    """Items from any task of the loop to a single consumer, at most ``capacity`` waiting."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        """The consumer's wait: a bare future of the running loop, not an ``anyio.Event`` (which
        builds an ``asyncio.Event`` around one and looks up the async backend to do it): this
        is the wait of every caller and agent frame."""
        self._room: anyio.Event | None = None
        """Set when an item is taken, while some sender waits for room."""

    def send_nowait(self, item: T) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if len(self._items) >= self.capacity:
            raise anyio.WouldBlock
        self._items.append(item)
        self._wake()

    async def send(self, item: T) -> None:
        """Queue ``item``: at once if there is room (no trip through the loop), else once the
        consumer has taken something. Raises ``ClosedResourceError`` if the queue is closed,
        also while waiting."""
        while len(self._items) >= self.capacity and not self._closed:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
        self.send_nowait(item)

    def receive_nowait(self) -> T:
        if self._items:
            return self._take()
        if self._closed:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def receive(self) -> T:
        """The next item: at once if one is queued (no trip through the loop), else when one is
        sent. Raises ``EndOfStream`` once the queue is closed and empty."""
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            if self._waiter is not None:
                raise RuntimeError("FrameQueue has one consumer; another task is already waiting")
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._take()

    def clear(self) -> int:
        """Drop everything queued (a barge-in's flush); how many items were dropped."""
        dropped = len(self._items)
        self._items.clear()
        self._make_room()
        return dropped

    def close(self) -> None:
        """No more items: the consumer gets what is queued, then ``EndOfStream``; waiting
        senders get ``ClosedResourceError``."""
        self._closed = True
        self._wake()
        self._make_room()

    def __len__(self) -> int:
        return len(self._items)

    def __aiter__(self) -> FrameQueue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def _take(self) -> T:
        item = self._items.popleft()
        if self._room is not None:
            self._make_room()
        return item

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is not None:
            room.set()
