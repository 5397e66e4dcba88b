"""Aura websockets kept open between clauses: a small pool per provider, shared by its calls.

Opening a websocket to Deepgram costs a TCP and a TLS handshake (and an HTTP upgrade) before the
first byte of audio; a reply is several clauses and a call several replies, so the provider keeps
the sockets it used and hands them out again (``Speak`` + ``Flush`` per clause, on a socket no other
clause is using). A socket is kept while idle for ``socket_idle_seconds``, then closed.

A clause cut off by barge-in leaves its socket mid-stream: the provider sends ``Clear`` and returns
the socket marked *dirty*. The next clause to take it first reads and drops what is still in
flight, up to Deepgram's ``Cleared`` (by then it has usually long arrived); a socket that does not
answer quickly is closed instead, and a fresh one opened. Nothing runs in the background.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

MAX_IDLE = 8
"""Idle sockets kept at most per provider; more are closed when returned."""
DRAIN_SECONDS = 0.3
"""Longest wait for ``Cleared`` on a dirty socket before it is closed instead of reused."""
CLEAR_SECONDS = 0.05
"""Longest wait to send ``Clear`` when a clause is cut off (barge-in must be immediate)."""
log = structlog.get_logger("voiceflow.deepgram")

ABANDON_SECONDS = 0.5
"""Longest wait for a closing handshake before the connection is just dropped."""


@dataclass(slots=True, eq=False)
class SpeakSocket:
    conn: Any
    stack: AsyncExitStack
    idle_since: float = 0.0
    dirty: bool = False
    """``Clear`` was sent and its ``Cleared`` not yet read."""


def field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class SpeakPool:
    def __init__(self, opener: Callable[[], Awaitable[SpeakSocket]], keep_seconds: float) -> None:
        self._opener = opener
        self._keep = keep_seconds
        self._idle: list[SpeakSocket] = []
        self._closed = False
        self.opened = 0
        """Sockets opened so far (for tests and logs)."""

    async def checkout(self) -> tuple[SpeakSocket, bool]:
        """A socket ready for a clause, and whether it was reused (a reused one may turn out to
        have been closed by the server meanwhile: the caller then opens a fresh one)."""
        while self._idle:
            socket = self._idle.pop()  # the most recently used: the least likely to have timed out
            if anyio.current_time() - socket.idle_since > self._keep:
                await abandon(socket)
                continue
            if socket.dirty and not await self._drain(socket):
                await abandon(socket)
                continue
            return socket, True
        return await self.open(), False

    async def open(self) -> SpeakSocket:
        socket = await self._opener()
        self.opened += 1
        return socket

    async def checkin(self, socket: SpeakSocket, *, clean: bool) -> None:
        """Return a socket after a clause; ``clean`` if its ``Flushed`` was read. Shielded and
        bounded: it runs when a clause is cancelled."""
        with anyio.CancelScope(shield=True):
            if not clean:
                # A socket that cannot take Clear at once is done for.
                with anyio.move_on_after(CLEAR_SECONDS), contextlib.suppress(Exception):
                    await socket.conn.send_clear()
                    socket.dirty = True
                if not socket.dirty:
                    await abandon(socket)
                    return
            if self._closed or self._keep <= 0 or len(self._idle) >= MAX_IDLE:
                await abandon(socket)
                return
            socket.idle_since = anyio.current_time()
            self._idle.append(socket)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for socket in idle:
            await abandon(socket)

    async def _drain(self, socket: SpeakSocket) -> bool:
        """Drop what a cleared clause left in flight, up to ``Cleared``; False if it never came."""
        with anyio.move_on_after(DRAIN_SECONDS):
            try:
                while True:
                    message = await socket.conn.recv()
                    if not isinstance(message, bytes) and field(message, "type") == "Cleared":
                        socket.dirty = False
                        return True
            except Exception:  # noqa: BLE001 - closed, malformed: not reusable
                return False
        return False


async def abandon(socket: SpeakSocket | None) -> None:
    """Close a socket: the closing handshake if it is quick, else just drop the connection."""
    if socket is None:
        return
    with anyio.move_on_after(ABANDON_SECONDS, shield=True) as scope:
        with contextlib.suppress(Exception):
            await socket.conn.send_close()
        with contextlib.suppress(Exception):
            await socket.stack.aclose()
    if scope.cancelled_caught:
        # A server that never answers the close: the connection is left to the SDK and the OS
        # (no reaching into the SDK's private socket to abort it); the call goes on meanwhile.
        log.info("deepgram socket did not close in time; dropped", seconds=ABANDON_SECONDS)
