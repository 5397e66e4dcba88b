"""One call's Deepgram recognition stream, over the SDK's websocket (``listen.v1.connect``).

How the STTStream contract maps onto Deepgram's protocol:

* ``send`` sends the frame as a binary message. ``finalize`` sends ``Finalize``; Deepgram answers
  with a final marked ``from_finalize``, which becomes the one ``finalized=True`` final that answers
  it. Finalize on an empty buffer is not answered at all, so after ``finalize_timeout`` the stream
  answers with an empty finalized final itself. Phrase finals Deepgram sends of its own accord
  (endpointing) are ``finalized=False`` parts of the utterance (``spontaneous_finals``).
* ``speech_final`` is carried from Results; ``UtteranceEnd`` becomes an empty final with
  ``speech_final=True`` (at once, rather than on the next final, which may be seconds away).
* ``end`` and word times are audio times on the session clock (:mod:`.socket_audio`).
* There is no background task: the ``transcripts()`` loop that reads the socket also keeps the
  timers (KeepAlive when nothing was sent for ``keepalive_seconds``, the finalize deadlines). It
  waits for the next message or the next timer, whichever comes first; ``finalize`` cuts the
  wait short when it adds an earlier deadline. Cancelling the SDK's ``recv`` loses nothing.
* While a finalize is unanswered the session clock is marked busy: a virtual clock must not jump
  past a final that real Deepgram is computing.
* A socket that drops is reopened (whoever notices first: ``send``, ``finalize`` or the reader),
  and the audio since the last final is sent again, so no words are lost. Reopening is bounded
  (``max_reconnects`` drops in a row without a final, each reopen within ``timeouts.connect``);
  past that the stream fails and the runtime's recogniser moves to the next provider.
* ``aclose`` sends ``CloseStream`` after any audio being sent, waits briefly for Deepgram's
  Metadata or close, and never longer than :data:`CLOSE_SECONDS`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from voiceflow.clock import Clock
from voiceflow.frames import AudioFrame, Transcript, Word
from voiceflow.providers import ProviderError, STTStream
from voiceflow_deepgram.config import DeepgramSTTConfig
from voiceflow_deepgram.errors import closed_reason, scrub
from voiceflow_deepgram.socket_audio import SocketAudio

log = structlog.get_logger("voiceflow.deepgram")

CLOSE_SECONDS = 1.0
"""Longest wait, on close, for pending audio to go out and Deepgram to answer CloseStream."""
STALL_AUDIO = 0.5
"""Seconds of audio sent on a socket that never answered, after which an unanswered Finalize
means the server has stalled (rather than that the buffer was empty)."""
ABANDON_SECONDS = 0.5
"""Longest wait for the websocket's closing handshake before the connection is just dropped."""


@dataclass(slots=True)
class Socket:
    """An open ``listen.v1`` websocket: the SDK's client for it, and the context that closes it."""

    conn: Any
    stack: AsyncExitStack


Opener = Callable[[], Awaitable[Socket]]
ErrorMapper = Callable[[BaseException], ProviderError]


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """A field of an SDK message, whether it parsed into a model or stayed a dict."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class DeepgramStream(STTStream):
    """See the module docstring."""

    spontaneous_finals = True

    def __init__(self, socket: Socket, opener: Opener, config: DeepgramSTTConfig, clock: Clock,
                 errors: ErrorMapper, *, url: str, key: str | None) -> None:
        self._socket: Socket | None = socket
        self._opener = opener
        self._config = config
        self._clock = clock
        self._errors = errors
        self._url = url
        self._key = key
        self._audio = SocketAudio(config.replay_seconds)
        self._io = anyio.Lock()  # every send, and reopening: keeps replayed audio in order
        self._generation = 0
        self._finalizes: deque[float] = deque()  # deadlines of unanswered finalize() calls
        self._busy: ExitStack | None = None
        self._last_sent = anyio.current_time()
        self._wait: anyio.CancelScope | None = None
        self._reading = False
        self._closing = False
        self._draining = False
        self._closed = anyio.Event()
        self._failure: ProviderError | None = None
        self._drops = 0
        self._heard = False  # anything received on the current socket
        self.keepalives = 0
        """KeepAlive messages sent (for tests and logs)."""
        self.reconnect_gaps: list[float] = []
        """Per reopened socket: seconds from noticing the drop to the audio being sent again."""

    # --- the STTStream API -------------------------------------------------------------------

    async def send(self, frame: AudioFrame) -> None:
        self._check()
        if self._closing:
            return
        async with self._io:
            socket, generation = self._socket, self._generation
            self._audio.add(frame)  # before it goes out: a drop replays it
            try:
                await self._on(socket).send_media(frame.pcm)
                self._last_sent = anyio.current_time()
            except (OSError, _closed_errors()) as exc:
                await self._reopen(generation, exc)

    async def finalize(self) -> None:
        self._check()
        self._finalizes.append(anyio.current_time() + self._config.finalize_timeout)
        if self._busy is None:
            self._busy = ExitStack()
            self._busy.enter_context(self._clock.busy())
        async with self._io:
            socket, generation = self._socket, self._generation
            try:
                await self._on(socket).send_finalize()
                self._last_sent = anyio.current_time()
            except (OSError, _closed_errors()) as exc:
                await self._reopen(generation, exc)  # and Finalize is sent again there
        if self._wait is not None:
            self._wait.cancel()  # the reader recomputes its wake-up time

    async def transcripts(self) -> AsyncIterator[Transcript]:
        nothing = object()
        while True:
            if self._closing and (self._closed.is_set() or self._socket is None or self._draining):
                await self._closed.wait()  # aclose() is reading the socket itself
                return  # after CloseStream: read on until Deepgram's last final and Metadata
            self._check()
            for transcript in self._expired():
                yield transcript
            await self._keep_alive()
            socket, generation = self._socket, self._generation
            if socket is None:  # being reopened: wait for it
                async with self._io:
                    continue
            wake = self._last_sent + self._config.keepalive_seconds
            if self._finalizes:
                wake = min(wake, self._finalizes[0])
            message, lost = nothing, None
            self._reading = True
            try:
                with anyio.move_on_after(max(0.0, wake - anyio.current_time())) as self._wait:
                    message = await socket.conn.recv()
            except (OSError, _closed_errors()) as exc:
                lost = exc
            except Exception as exc:  # noqa: BLE001 - a malformed message, mapped
                raise self._fail(self._errors(exc)) from None
            finally:
                self._wait, self._reading = None, False
            if lost is not None:
                if self._closing:
                    self._closed.set()
                    return
                await self._reopen_soon(generation, lost)
            elif message is not nothing:
                self._heard = True
                for transcript in self._handle(message):
                    yield transcript

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._release_busy()
        with anyio.move_on_after(CLOSE_SECONDS, shield=True):
            async with self._io:  # audio being sent goes out before CloseStream
                socket = self._socket
                if socket is not None and self._failure is None:
                    with contextlib.suppress(Exception):
                        await socket.conn.send_close_stream()
                        if self._reading:
                            await self._closed.wait()  # the reader sees the close
                        else:
                            self._draining = True  # a reader that comes back leaves it to us
                            await self._drain(socket)
        self._closed.set()
        socket, self._socket = self._socket, None
        await abandon(socket)

    # --- messages ----------------------------------------------------------------------------

    def _handle(self, message: Any) -> list[Transcript]:
        kind = _field(message, "type")
        if kind == "Results":
            return self._results(message)
        if kind == "UtteranceEnd":
            end = _field(message, "last_word_end")
            at = self._audio.audio_time(float(end)) if isinstance(end, int | float) else None
            return [Transcript("", True, self._clock.now(), speech_final=True, end=at)]
        if kind == "Metadata" and self._closing:
            self._closed.set()
        elif kind == "Error":
            detail = _field(message, "description") or _field(message, "message") or "no detail"
            raise self._fail(ProviderError(
                f"deepgram: {self._url} reported an error: {scrub(str(detail), self._key)}"
                f" ({scrub(str(_field(message, 'variant') or 'Error'), self._key)})"))
        return []  # SpeechStarted, Metadata, audio, unknown types

    def _results(self, message: Any) -> list[Transcript]:
        alternatives = _field(_field(message, "channel"), "alternatives") or []
        best = alternatives[0] if alternatives else None
        text = str(_field(best, "transcript") or "").strip()
        confidence = _field(best, "confidence")
        words = tuple(self._word(w) for w in _field(best, "words") or ())
        start, duration = float(_field(message, "start") or 0.0), float(_field(message, "duration") or 0.0)
        end = self._audio.audio_time(start + duration)
        now = self._clock.now()
        conf = float(confidence) if isinstance(confidence, int | float) else None
        if not _field(message, "is_final"):
            return [Transcript(text, False, now, conf, words, end=end)] if text else []
        self._audio.covered(start + duration)
        self._drops = 0  # a final: the socket is doing its job
        speech_final = bool(_field(message, "speech_final"))
        if _field(message, "from_finalize") and self._finalizes:
            self._finalizes.popleft()
            if not self._finalizes:
                self._release_busy()
            return [Transcript(text, True, now, conf, words, finalized=True, speech_final=speech_final, end=end)]
        if text or speech_final:
            return [Transcript(text, True, now, conf, words, speech_final=speech_final, end=end)]
        return []  # an empty final over silence says nothing

    def _word(self, word: Any) -> Word:
        start, end = float(_field(word, "start") or 0.0), float(_field(word, "end") or 0.0)
        text = str(_field(word, "punctuated_word") or _field(word, "word") or "")
        return Word(text, self._audio.audio_time(start) or 0.0, self._audio.audio_time(end) or 0.0)

    def _expired(self) -> list[Transcript]:
        """Empty finalized finals for the finalize() calls Deepgram did not answer in time.

        Unless the socket has answered nothing at all though it was sent speech (finalize comes
        after speech, and Deepgram announces speech with SpeechStarted and interims): a server
        that accepted the stream and then stalled must fail it, not pass for a silent caller.
        """
        now, expired = anyio.current_time(), []
        if self._finalizes and self._finalizes[0] <= now and not self._heard and self._audio.sent >= STALL_AUDIO:
            raise self._fail(ProviderError(
                f"deepgram: {self._url} accepted the stream but answered nothing "
                f"({self._audio.sent:.1f} s of audio sent, Finalize unanswered for "
                f"{self._config.finalize_timeout:g} s)"))
        while self._finalizes and self._finalizes[0] <= now:
            self._finalizes.popleft()
            expired.append(Transcript("", True, self._clock.now(), finalized=True, end=self._audio.end_time()))
        if expired and not self._finalizes:
            self._release_busy()
        return expired

    # --- timers, drops, closing --------------------------------------------------------------

    async def _keep_alive(self) -> None:
        """Deepgram drops a stream that hears nothing for ~10 s: a muted caller, a transport
        that stopped sending. The runtime sends every caller frame (silence too), so during a
        live call this rarely fires; it is what keeps a paused stream open."""
        if (anyio.current_time() - self._last_sent < self._config.keepalive_seconds or self._io.locked()
                or self._closing):
            return
        async with self._io:
            socket, generation = self._socket, self._generation
            try:
                await self._on(socket).send_keep_alive()
                self._last_sent = anyio.current_time()
                self.keepalives += 1
            except (OSError, _closed_errors()) as exc:
                await self._reopen(generation, exc)

    async def _reopen_soon(self, generation: int, cause: BaseException) -> None:
        async with self._io:
            await self._reopen(generation, cause)

    async def _reopen(self, generation: int, cause: BaseException) -> None:
        """Replace the dropped socket and send the unfinalized audio again (``self._io`` held).

        Marked busy on the session clock: the caller's audio and finalize requests queue up
        behind it, and a virtual clock that jumped meanwhile would give up on the turn's final.
        """
        if generation != self._generation:
            return  # someone else already reopened it
        self._check()
        with self._clock.busy():
            await self._reconnect(cause)

    def _reason(self, exc: BaseException) -> str:
        return scrub(str(exc), self._key) if isinstance(exc, OSError) else closed_reason(exc, self._key)

    async def _reconnect(self, cause: BaseException) -> None:
        noticed = anyio.current_time()
        reason = self._reason(cause)
        dropped, self._socket = self._socket, None
        await abandon(dropped)
        while True:
            self._drops += 1
            if self._drops > self._config.max_reconnects:
                limit = self._config.max_reconnects
                raise self._fail(ProviderError(
                    f"deepgram: the stream to {self._url} dropped ({reason})"
                    + (f" {limit + 1} times without a final in between" if limit else "; reopening is off")))
            log.warning("deepgram: the stream dropped; reopening it", reason=reason, attempt=self._drops,
                        replay_seconds=round(self._audio.pending_seconds, 2))
            try:
                with anyio.fail_after(self._config.timeouts.connect):
                    socket = await self._opener()
            except TimeoutError:
                raise self._fail(ProviderError(
                    f"deepgram: the stream dropped ({reason}) and {self._url} did not reopen it within "
                    f"{self._config.timeouts.connect:g} s")) from None
            except Exception as exc:  # noqa: BLE001 - mapped
                raise self._fail(ProviderError(
                    f"deepgram: the stream dropped ({reason}) and could not be reopened: {self._errors(exc)}")) from None
            self._socket, self._generation, self._heard = socket, self._generation + 1, False
            frames = self._audio.restart()
            for frame in frames:
                self._audio.add(frame)  # all of them first: a second drop replays them all again
            try:
                for frame in frames:
                    await socket.conn.send_media(frame.pcm)
                if self._finalizes:
                    await socket.conn.send_finalize()
                    deadline = anyio.current_time() + self._config.finalize_timeout
                    self._finalizes = deque(deadline for _ in self._finalizes)
            except (OSError, _closed_errors()) as exc:
                reason = self._reason(exc)
                self._socket = None
                await abandon(socket)
                continue
            self._last_sent = anyio.current_time()
            self.reconnect_gaps.append(self._last_sent - noticed)
            return

    async def _drain(self, socket: Socket) -> None:
        """After CloseStream, with no reader: read until Deepgram's Metadata or its close."""
        while True:
            message = await socket.conn.recv()
            if _field(message, "type") == "Metadata":
                return

    def _on(self, socket: Socket | None) -> Any:
        if socket is None:
            raise self._fail(ProviderError("deepgram: the stream is closed"))
        return socket.conn

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, error: ProviderError) -> ProviderError:
        if self._failure is None:
            self._failure = error
        self._release_busy()
        return self._failure

    def _release_busy(self) -> None:
        busy, self._busy = self._busy, None
        if busy is not None:
            busy.close()


async def abandon(socket: Socket | None) -> None:
    """Close a socket: the closing handshake if it is quick, else just drop the connection. Never
    raises, never waits more than :data:`ABANDON_SECONDS` (the SDK's websocket would wait up to
    10 s for a server that does not answer the close)."""
    if socket is None:
        return
    with anyio.move_on_after(ABANDON_SECONDS, shield=True) as scope:
        with contextlib.suppress(Exception):
            await socket.stack.aclose()
    if scope.cancelled_caught:
        # A server that never answers the close: the connection is left to the SDK and the OS
        # (no reaching into the SDK's private socket to abort it); the call goes on meanwhile.
        log.info("deepgram socket did not close in time; dropped", seconds=ABANDON_SECONDS)


def _closed_errors() -> type[Exception]:
    from websockets.exceptions import ConnectionClosed

    return ConnectionClosed
