"""Stream-input sockets, with one spare opened while the current clause plays.

A stream-input socket serves one synthesis: once its end of input is sent, the service answers
``isFinal`` and closes it; and a socket cannot be cleared mid-clause, so barge-in closes it too.
A fresh socket per clause costs a TCP, TLS and websocket handshake (100–300 ms to ElevenLabs)
before the first audio. So when a clause takes its socket, the next one starts opening in the
background; the next clause, or the next reply's first clause, takes it ready-made.

Decisions, and why:

* One spare per provider, not per call. Providers are shared by every call in a process; a spare
  per call would need a "call started" hook TTS does not have, and one spare already serves the
  common case (clauses follow each other). A clause that finds no spare opens its own.
* A spare is dropped (closed) a little before the service's ``inactivity_timeout``, on the
  event loop's real clock: the service would close it then anyway, and a socket found closed at
  the start of a clause would cost a failed clause instead of a handshake.
* Nothing is pre-opened at ``prepare()``: a server waiting for calls would only hold sockets
  that expire. The first clause of the first reply pays the handshake.
* Sockets are closed in the background (``release``): a barged-in clause returns at once, and the
  close handshake (bounded by ``CLOSE_TIMEOUT``) finishes on its own.
* Background work is plain asyncio tasks owned by this object and ended by :meth:`aclose`: it
  outlives the clause (so it cannot live in the clause's task group) and belongs to no call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from voiceflow.providers import ProviderError, ProviderUnavailable

CLOSE_TIMEOUT = 1.0
"""Longest wait for the service to answer a close frame before the TCP connection is dropped."""

EXPIRY_MARGIN = 2.0
"""Seconds before the service's inactivity timeout at which a spare socket is dropped."""

Opener = Callable[[], Awaitable[Any]]


class SparePool:
    """Hands out open sockets from ``open_socket``, keeping one spare ready (if ``pre_open``)."""

    def __init__(self, open_socket: Opener, *, lifetime: float, pre_open: bool) -> None:
        self._open = open_socket
        self._lifetime = max(1.0, lifetime - EXPIRY_MARGIN)
        self._pre_open = pre_open
        self._spare: asyncio.Task[Any] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.opened = 0
        """Sockets opened so far (for tests and diagnostics)."""

    async def take(self) -> tuple[Any, bool]:
        """An open socket and whether it was the spare; starts opening the next spare."""
        spare = self._pop_spare()
        self._replenish()
        if spare is not None:
            try:
                socket = await self._result(spare)
            except ProviderUnavailable:
                raise  # a refused key or an unknown voice: a fresh socket would fare no better
            except ProviderError:
                socket = None  # the spare failed to open (a server restarting?): try afresh
            if socket is not None and _is_open(socket):
                return socket, True
            if socket is not None:
                self.release(socket)
        return await self._open_counted(), False

    async def open(self) -> Any:
        """A fresh socket (not the spare)."""
        return await self._open_counted()

    def release(self, socket: Any) -> None:
        """Close ``socket`` in the background (at once, for a barged-in clause)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(_close_quietly(socket))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Close the spare and wait (briefly) for background closes to finish."""
        self._closed = True
        spare = self._pop_spare()
        if spare is not None and _same_loop(spare):
            spare.cancel()
            try:
                socket = await spare
            except BaseException:  # noqa: BLE001 - cancelled or failed: nothing to close
                socket = None
            if socket is not None:
                self.release(socket)
        pending = [task for task in self._background if _same_loop(task)]
        if pending:
            with anyio.move_on_after(CLOSE_TIMEOUT + 1.0, shield=True):
                await asyncio.gather(*pending, return_exceptions=True)

    # --- the spare ---------------------------------------------------------------------------

    async def _result(self, task: asyncio.Task[Any]) -> Any:
        """``await task`` (cancelling it too if we are cancelled), closing its socket if it
        opened just as we were cancelled."""
        try:
            return await task
        except asyncio.CancelledError:
            if task.done() and not task.cancelled() and task.exception() is None:
                self.release(task.result())
            raise

    def _pop_spare(self) -> asyncio.Task[Any] | None:
        spare, self._spare = self._spare, None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if spare is not None and not _same_loop(spare):
            return None  # left over from another event loop (a test's): unusable, and not ours to close
        return spare

    def _replenish(self) -> None:
        if not self._pre_open or self._closed or self._spare is not None:
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._open_counted(), name="elevenlabs-spare-socket")
        self._spare = task
        task.add_done_callback(self._spare_opened)

    async def _open_counted(self) -> Any:
        self.opened += 1
        return await self._open()

    def _spare_opened(self, task: asyncio.Task[Any]) -> None:
        if self._spare is not task:
            return  # taken while opening: whoever took it has the result
        if task.cancelled() or task.exception() is not None:
            self._spare = None  # the next clause opens its own (and reports why, if it fails too)
            return
        self._expiry = task.get_loop().call_later(self._lifetime, self._expire, task)

    def _expire(self, task: asyncio.Task[Any]) -> None:
        if self._spare is task:
            self._spare = None
            self._expiry = None
            self.release(task.result())


def _same_loop(task: asyncio.Task[Any]) -> bool:
    try:
        return task.get_loop() is asyncio.get_running_loop()
    except RuntimeError:
        return False


def _is_open(socket: Any) -> bool:
    from websockets.protocol import State

    return bool(socket.state is State.OPEN)


async def _close_quietly(socket: Any) -> None:
    try:
        await socket.close()
    except Exception:  # noqa: BLE001 - a socket that will not close politely is dropped anyway
        transport = getattr(socket, "transport", None)
        if transport is not None:
            transport.abort()
