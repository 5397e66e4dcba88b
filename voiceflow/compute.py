"""Running CPU-heavy model code without blocking the event loop.

One event loop serves every session in a process, so a 300 ms Whisper decode on the loop would
freeze every other caller's audio for 300 ms. Local models therefore run in worker threads (their
native code releases the GIL), bounded by a :class:`anyio.CapacityLimiter` per model so that two
sessions never drive one non-thread-safe model at once and the two cores are budgeted explicitly.

Both helpers mark the session clock busy while the thread works, so a virtual clock counts the
compute time as real time instead of skipping over it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio import RunFinishedError, from_thread

from voiceflow.clock import current_clock

T = TypeVar("T")

async def run_in_thread(
    fn: Callable[..., T],
    *args: object,
    limiter: anyio.CapacityLimiter | None = None,
    abandon_on_cancel: bool = False,
) -> T:
    """Run ``fn(*args)`` in a worker thread; the clock counts it as busy time.

    A thread cannot be stopped, so by default a cancelled caller waits for ``fn`` to return
    (which keeps ``limiter`` honest: no second call starts on a model still in use). Loading a
    model is different: pass ``abandon_on_cancel=True`` in ``prepare()`` so its deadline really
    ends the wait for a load that hangs; the thread finishes in the background and its result
    is dropped.
    """
    with current_clock().busy():
        return await anyio.to_thread.run_sync(
            fn, *args, limiter=limiter, abandon_on_cancel=abandon_on_cancel
        )


class StopFlag:
    """Set by the event loop when the consumer is gone; checked by the producing thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


async def iterate_in_thread(
    make_items: Callable[[StopFlag], Iterable[T]],
    *,
    limiter: anyio.CapacityLimiter | None = None,
    buffer: int = 8,
    name: str = "voiceflow-producer",
) -> AsyncIterator[T]:
    """Drive a blocking generator (LLM tokens, TTS chunks) in a thread and yield its items here.

    ``make_items`` receives a :class:`StopFlag` and should check it between items: when the caller
    stops iterating (barge-in cancels the reply, or it simply breaks out), the flag is set and the
    thread finishes its current item and returns. That is what makes local models cancel within one
    token or one chunk instead of running to the end in the background.

    ``limiter`` is held from before the thread starts until it has really finished, so the next
    request for the same model waits for this one to stop rather than racing it.

    The thread is a plain thread rather than a task-group child so that this stays an ordinary
    async generator: no cancel scope spans a ``yield``.
    """
    stop = StopFlag()
    token = anyio.lowlevel.current_token()
    busy = _BusyMarker()
    if limiter is not None:
        await limiter.acquire_on_behalf_of(stop)
    # Created only once the limiter is held: a cancel while waiting for it leaves nothing unclosed.
    send, receive = anyio.create_memory_object_stream[object](buffer)

    def push(item: object) -> None:
        try:
            from_thread.run_sync(send.send_nowait, item, token=token)
            return
        except anyio.WouldBlock:
            pass
        # The consumer is behind (e.g. TTS waiting for playout): this thread now waits rather
        # than computes, so it must not hold the clock busy, or virtual time could not skip ahead.
        from_thread.run_sync(busy.exit, token=token)
        try:
            from_thread.run(send.send, item, token=token)
        finally:
            from_thread.run_sync(busy.enter, token=token)

    def produce() -> None:
        try:
            for item in make_items(stop):
                if stop.is_set():
                    break
                push(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, RunFinishedError):
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, not swallowed
            failure = _Failure(exc)
            _deliver(lambda: from_thread.run(send.send, failure, token=token))
        finally:
            # One hop back to the loop, closing the stream last: once the consumer sees the end,
            # this thread needs nothing more from the loop (which may then stop for good).
            _deliver(lambda: from_thread.run_sync(finish, token=token))

    def finish() -> None:
        busy.exit()
        if limiter is not None:
            limiter.release_on_behalf_of(stop)
        send.close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    busy.enter()
    thread.start()
    try:
        async with receive:
            async for item in receive:
                if isinstance(item, _Failure):
                    raise item.exc
                yield item  # type: ignore[misc]
    finally:
        stop.set()
        # Also closed here, not only by the thread: if the loop stops before the thread's last
        # hand-back arrives, the stream must not be left open (the thread then sees it closed).
        send.close()


class _BusyMarker:
    """Holds the session clock busy while a producer thread computes; entered from the loop only."""

    def __init__(self) -> None:
        self._clock = current_clock()
        self._held: AbstractContextManager[object] | None = None

    def enter(self) -> None:
        if self._held is None:
            self._held = self._clock.busy()
            self._held.__enter__()

    def exit(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)


def _deliver(call: Callable[[], object]) -> None:
    """Best effort hand-back to the loop from a producer thread; the consumer may be long gone."""
    try:
        call()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, RunFinishedError):
        pass


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
