"""The serving seam: how a transport that takes calls over HTTP or WebSocket joins one serving
process (``voiceflow serve``).

A *served* transport does not run a server of its own. It hands the process an ASGI app
(:meth:`ServedTransport.app`), which ``voiceflow serve`` mounts under ``/agents/<agent name>``
next to every other agent's, behind the process's access check and beside ``/healthz`` and
``/readyz``. In return it gets a :class:`SessionHost` for its agent: the only way to start a
call. The host decides whether a call may start (limits, drain, models still loading) and runs it
with the same per-call isolation as ``voiceflow run``; the transport only speaks its wire
protocol.

Why this shape:

* **One process, one port, many transports.** A browser page, a WebSocket API and a Twilio
  webhook of several agents share one uvicorn, one health endpoint and one drain. A transport
  that ran its own server could not take part in any of that.
* **ASGI, not a framework's types.** The app is a plain ASGI callable, so a plugin may build it
  with Starlette (as the built-in ones do), another framework, or by hand; the seam ties no
  plugin to a web framework's version.
* **Admission before accept.** :meth:`SessionHost.admit` is synchronous and raises
  :class:`Refused` at once, so a transport can refuse politely in its own protocol (a WebSocket
  close code and a JSON error, an HTTP 503, TwiML that says "busy") before it has spent anything.
* **The slot owns the call's lifetime.** ``with host.admit() as slot: await slot.run(call)``:
  the place is held until the call is over, including a goodbye spoken during a drain, and is
  released even if the client vanished before the call started.

This module imports only the public provider API, so plugins may import it (it is listed with
the public modules in ``tests/test_public_api_boundary.py``). It is proposed for
:mod:`voiceflow.providers`; once it moves there, this module re-exports it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Self

from voiceflow.clock import Clock
from voiceflow.providers import C, CallTransport, ProviderError, SessionRunner, TransportProvider
from voiceflow.tasks import create_task_group

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]
"""An ASGI 3 application (https://asgi.readthedocs.io): what a served transport contributes."""


class RefusalReason(str, Enum):
    """Why a call was not admitted; each maps to a retry hint a client can act on."""

    BUSY = "busy"
    """The agent already has ``serving.max_sessions`` calls, or the process is overloaded (its
    event loop runs later than ``serving.max_loop_lag``, or its calls take their callers' audio
    later than ``serving.max_audio_lag``)."""
    DRAINING = "draining"
    """The process is shutting down (SIGTERM): try another instance."""
    STARTING = "starting"
    """The agent's models are still loading."""


class Refused(Exception):
    """:meth:`SessionHost.admit` will not start a call now. ``str(refused)`` is a sentence a
    caller's developer can read; ``retry_after`` is a hint in seconds."""

    def __init__(self, reason: RefusalReason, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class CloseCode(int, Enum):
    """WebSocket close codes (RFC 6455) a served transport ends a call's socket with."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED = 1003
    INVALID = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013


class ClientError(Exception):
    """A client broke its transport's protocol (a malformed, oversized or unexpected message,
    silence past the idle timeout). It ends that call only: the client is told ``code`` and
    ``str(error)`` in the transport's own way, and its socket is closed with ``close``."""

    def __init__(self, code: str, message: str, close: CloseCode = CloseCode.INVALID) -> None:
        super().__init__(message)
        self.code = code
        self.close = close


def json_object(text: str) -> dict[str, Any]:
    """A client's text message as a JSON object, else :class:`ClientError` ``bad_message`` (also
    for nesting deep enough to exhaust the parser)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ClientError("bad_message", "a text message must be a JSON object") from None
    if not isinstance(data, dict):
        raise ClientError("bad_message", "a text message must be a JSON object")
    return data


@dataclass(frozen=True, slots=True)
class ServingLimits:
    """The agent's ``serving:`` limits a transport enforces on its wire."""

    max_sessions: int
    """Calls at once for this agent; :meth:`SessionHost.admit` refuses beyond it."""
    max_message_bytes: int
    """The largest message a client may send; a bigger one ends that call (only that call)."""
    idle_timeout: float
    """Seconds without any message from the client before its call is ended as vanished."""


class IdleWatch:
    """What :func:`watch_idle` yields: call :meth:`heard` for every message from the client."""

    __slots__ = ("_clock", "heard_at")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.heard_at = clock.now()

    def heard(self) -> None:
        self.heard_at = self._clock.now()


@asynccontextmanager
async def watch_idle(clock: Clock, timeout: float) -> AsyncIterator[IdleWatch]:
    """Cancel the body and raise ``TimeoutError`` once ``timeout`` seconds pass without
    :meth:`IdleWatch.heard`; like ``fail_after`` around each receive, but cheap per message.

    ``fail_after`` around every receive arms and disarms a loop timer for each message, 50 times
    a second per call on an audio socket. Here one watcher task sleeps until the last message
    plus ``timeout`` and only looks again then: one wake per timeout while the client talks.
    """
    watch = IdleWatch(clock)
    expired = False
    try:
        async with create_task_group() as tg:

            async def watcher() -> None:
                nonlocal expired
                while (due := watch.heard_at + timeout) > clock.now():
                    await clock.sleep_until(due)
                expired = True
                tg.cancel_scope.cancel()

            tg.start_soon(watcher)
            try:
                yield watch
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The body's own exception (the watcher raises none), as it would leave fail_after.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    if expired and tg.cancel_scope.cancelled_caught:  # (not a body that ended just as time ran out)
        raise TimeoutError(f"nothing received for {timeout:g} s")


class CallSlot(ABC):
    """A place held for one call, from admission until the call is over. Use it as a context
    manager so it is released however the handler ends."""

    @abstractmethod
    async def run(self, call: CallTransport) -> str:
        """Run the call to its end; return why it ended (for the transport's hang-up message).

        Never raises for the call's sake: a failing call is logged and ends alone. The call's
        ``notify`` receives, besides ``greeting_done`` and ``hangup``: ``transcript`` (``turn``,
        ``text``), ``turn_started`` (``turn``, ``kind``) and ``turn_ended`` (``turn``, ``kind``,
        ``outcome``, ``agent_text``, ``heard_text``, ``mouth_to_ear``). ``hangup`` means the
        conversation is over, not the connection: during a drain the host may then call
        ``call.run()`` a second time and play a goodbye through ``call.play``, so a served
        transport's ``run`` must be startable again and must not close its socket on ``hangup``.
        Close it once this method has returned.
        """

    @abstractmethod
    def release(self) -> None:
        """Give the place back (idempotent)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class SessionHost(ABC):
    """What the serving process gives a served transport for one agent."""

    agent_name: str
    limits: ServingLimits

    @abstractmethod
    def admit(self) -> CallSlot:
        """Reserve a place for a call, or raise :class:`Refused` (full, draining, starting)."""

    @property
    @abstractmethod
    def draining(self) -> bool:
        """The process is shutting down: calls in progress go on, new ones are refused."""

    @property
    @abstractmethod
    def token_required(self) -> bool:
        """Whether the process was started with an access token."""

    @abstractmethod
    def token_ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is the process's access token (constant-time; True when no
        token is set). The process checks it before any request reaches a transport's app,
        except on :meth:`ServedTransport.open_paths`, where a transport that authenticates its
        callers another way (Twilio's request signature, a token inside its own protocol) may
        use it."""


class ServedTransport(TransportProvider[C]):
    """A transport whose calls arrive over HTTP or WebSocket, served by ``voiceflow serve``."""

    @abstractmethod
    def app(self, host: SessionHost) -> ASGIApp:
        """The ASGI app mounted at ``/agents/<agent name>``; paths it sees are relative to it
        (``scope["root_path"]`` holds the prefix). Called once, when the process starts."""

    def open_paths(self) -> Collection[str]:
        """Paths under the mount (``"/twilio/voice"``) that skip the access-token check because
        this transport authenticates them itself. Default: none."""
        return ()

    def urls(self, base: str) -> list[str]:
        """Where callers reach this agent, for the start-up banner (``base`` is
        ``http://host:port/agents/<name>``)."""
        return [base]

    async def serve(self, run_session: SessionRunner) -> None:
        raise ProviderError(
            f"the {self.name!r} transport takes calls over the network: run `voiceflow serve AGENT.yaml`"
        )
