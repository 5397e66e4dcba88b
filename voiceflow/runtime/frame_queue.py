"""A bounded queue from the caller-audio pump to one consumer task, one loop trip per frame.

anyio's memory object streams yield to the event loop at the start of every ``receive`` (a
checkpoint), so a consumer woken for a frame makes two trips through the loop for it: the wake,
then the checkpoint before it finds the queue empty and waits again. On the caller-audio path
that is every 20 ms frame of every call, and with 200 calls the second trip alone is ~10,000
task steps a second. :class:`FrameQueue` hands over what is queued without yielding and waits
only when there is nothing: one trip per frame.

It has the same errors as a memory object stream (``WouldBlock`` when full, ``EndOfStream``
once closed and empty, ``ClosedResourceError`` when sending after close), and one consumer.
"""

from __future__ import annotations

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
        self._waiter: anyio.Event | None = None

    def send_nowait(self, item: T) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if len(self._items) >= self.capacity:
            raise anyio.WouldBlock
        self._items.append(item)
        self._wake()

    def receive_nowait(self) -> T:
        if self._items:
            return self._items.popleft()
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
            self._waiter = waiter = anyio.Event()
            try:
                await waiter.wait()
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()

    def close(self) -> None:
        """No more items: the consumer gets what is queued, then ``EndOfStream``."""
        self._closed = True
        self._wake()

    def __len__(self) -> int:
        return len(self._items)

    def __aiter__(self) -> FrameQueue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set()
