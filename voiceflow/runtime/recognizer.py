"""A call's speech recognition: the STT chain behind one stream that can fail without harm.

Two promises to the rest of the call:

* **The caller-audio path never waits for the recogniser.** Frames go into a bounded queue
  (:data:`QUEUE_SECONDS` of audio) and a sender task forwards them, so a slow socket cannot delay
  the VAD or a barge-in decision. When the queue is full the recogniser is not keeping up; new
  frames are dropped (counted, logged once per stall) rather than blocking the caller's audio, and
  the stall itself soon becomes a failure through the ``idle`` deadline on ``send``.
* **A failing recogniser costs a turn, never the call.** Every call into the provider has a
  deadline (``connect`` to open, ``idle`` per ``send``, ``first_byte`` for ``finalize``). Any
  exception, deadline or a transcript stream that ends on its own is reported as
  :class:`RecognizerFailed` (the turn manager apologises for that turn) and the stream is
  replaced: the next provider of the chain first, wrapping around, retried with a back-off while
  none opens. Audio that arrives while no stream is open is dropped, and a finalize request then
  fails at once, so no turn waits for a final that cannot come.

**A recogniser that keeps failing is skipped by every call** (:mod:`voiceflow.runtime.breaker`,
with ``breaker``: the pool's, shared by the whole process). Opening a stream consults the
provider's circuit: an open circuit is skipped (an :class:`AttemptRecord` and a log line say so),
and tried after all only when nothing else of the chain opens (something beats nothing). A failure
to open, or a stream that fails, counts against it; a stream that delivers a transcript (or serves
its call to the end without failing) closes it, which is how a half-open probe succeeds. So a dead
primary (a socket that hangs as it opens) costs its ``connect`` deadline a few times per process,
not once per call.

Speech-start hints and finalize requests travel through the same queue as the audio, so the
provider sees them in order: every frame of an utterance before it is asked for its final.

Each finalize request gets an id, and the final that answers it carries that id
(:class:`Recognized`): for a batch recogniser every final answers the oldest open request; for a
streaming one (``STTStream.spontaneous_finals``) only the final marked ``finalized`` does, and
its per-phrase finals come without an id. The turn manager can then tell the final it waits for
from a phrase final, and a late answer to a turn it gave up on from one for the current turn.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from voiceflow.clock import current_clock
from voiceflow.config.base import AttemptTimeouts
from voiceflow.frame_queue import FrameQueue
from voiceflow.frames import FRAME_SECONDS, AudioFrame, Transcript
from voiceflow.providers import Provider, ProviderTimeout, STTProvider, STTStream
from voiceflow.redaction import redact
from voiceflow.runtime.breaker import Breaker
from voiceflow.runtime.chain import AttemptObserver, AttemptRecord
from voiceflow.runtime.deadline import close_within, within
from voiceflow.tasks import create_task_group

log = structlog.get_logger("voiceflow.stt")

QUEUE_SECONDS = 5.0
"""Caller audio the recogniser may fall behind by before frames are dropped."""

RETRY_FIRST, RETRY_MAX = 0.5, 30.0
"""Back-off between attempts to open a new stream when none of the chain opens, or when streams
fail within :data:`STABLE_SECONDS` of opening."""
STABLE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RecognizerFailed:
    """The recogniser failed; speech since the last final may have no transcript, and finalize
    requests still open will never be answered."""

    provider: str
    error: str


@dataclass(frozen=True, slots=True)
class Recognized:
    """A transcript, with the finalize request it answers (``None``: an interim, or a final a
    streaming recogniser sent of its own accord)."""

    transcript: Transcript
    answers: int | None = None


RecognizerOutput = Recognized | RecognizerFailed


@dataclass(frozen=True, slots=True)
class _Finalize:
    """Marker in the audio queue: ask for the final transcript of everything sent before it."""

    request: int


@dataclass(frozen=True, slots=True)
class _SpeechStarted:
    t: float


_Item = AudioFrame | _Finalize | _SpeechStarted


class Recognizer:
    """The STT stage of one call (see the module docstring): ``send``/``finalize`` from the
    caller side never block; :meth:`run` does the talking to providers; :attr:`outputs` reports."""

    def __init__(
        self,
        providers: Sequence[STTProvider[Any]],
        *,
        breaker: Callable[[Provider[Any]], Breaker] | None = None,
        observers: Sequence[AttemptObserver] = (),
    ) -> None:
        self.providers = list(providers)
        self.breaker = breaker
        """The process-wide circuit breaker of each provider (``ProviderPool.breaker``)."""
        self.observers = list(observers)
        """Told of every attempt to open a stream, as a chain's observers are of its attempts
        (stage ``stt``; a skipped provider's error is ``skipped: circuit open …``)."""
        self._unproven: Breaker | None = None
        """The open stream's breaker, until the stream has shown that it works."""
        capacity = round(QUEUE_SECONDS / FRAME_SECONDS)
        self._queue = FrameQueue[_Item](capacity)
        self._out_send, self._out = anyio.create_memory_object_stream[RecognizerOutput](256)
        self._stream: STTStream | None = None
        self._index = 0
        self._dropped = 0
        self._requests = 0

    @property
    def outputs(self) -> ObjectReceiveStream[RecognizerOutput]:
        """Transcripts and failures, in the order they happened."""
        return self._out

    @property
    def provider_name(self) -> str:
        return self.providers[self._index].name if self.providers else "none"

    # --- the caller side (never blocks) ------------------------------------------------------

    def send(self, frame: AudioFrame) -> None:
        try:
            self._queue.send_nowait(frame)
        except anyio.WouldBlock:
            if self._dropped == 0:
                log.warning("speech recogniser is not keeping up: dropping caller audio",
                            provider=self.provider_name, queued_seconds=QUEUE_SECONDS)
            self._dropped += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def finalize(self) -> int:
        """Ask for the final transcript of everything sent so far; returns the request's id,
        which the final that answers it carries (:attr:`Recognized.answers`)."""
        self._requests += 1
        try:
            self._queue.send_nowait(_Finalize(self._requests))
        except anyio.WouldBlock:
            self._report(f"fell more than {QUEUE_SECONDS:g} s behind the caller")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        return self._requests

    def speech_started(self, t: float) -> None:
        try:
            self._queue.send_nowait(_SpeechStarted(t))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # a hint: a recogniser this far behind is failing anyway

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the first stream the chain offers; raises if none opens."""
        errors = await self._open_from(0)
        if self._stream is None:
            raise RecognizerUnavailable("no stt provider could open a stream: " + "; ".join(errors))

    async def run(self) -> None:
        """Feed the stream and read its transcripts until :meth:`aclose`; replace it on failure."""
        retry = RETRY_FIRST
        async with self._out_send:
            while True:
                if self._stream is None:
                    errors = await self._open_from(self._index + 1)
                    if self._stream is None:
                        log.warning("no speech recogniser could open a stream", errors=errors)
                        if not await self._idle_for(retry):
                            return
                        retry = min(RETRY_MAX, retry * 2)
                        continue
                stream = self._stream
                assert stream is not None
                opened = anyio.current_time()
                failure, more = await self._serve(stream)
                self._stream = None
                self._settle(failure)
                problem = await close_within(self._timeouts().connect, stream.aclose)
                if problem is not None:
                    log.warning("speech recogniser did not close cleanly", error=problem)
                if failure is not None:
                    self._report(failure)
                if not more:
                    return
                if failure is not None and anyio.current_time() - opened < STABLE_SECONDS:
                    # A stream that fails as soon as it opens would otherwise be reopened in a
                    # tight loop: back off as when none opens at all.
                    if not await self._idle_for(retry):
                        return
                    retry = min(RETRY_MAX, retry * 2)
                else:
                    retry = RETRY_FIRST

    async def aclose(self) -> None:
        """The call is over: no more audio; the stream is closed (within its deadline)."""
        self._queue.close()
        for end in (self._out_send, self._out):
            end.close()
        stream, self._stream = self._stream, None
        if stream is not None:
            self._settle(None)  # it served the call to its end without failing
            problem = await close_within(self._timeouts().connect, stream.aclose)
            if problem is not None:
                log.warning("speech recogniser did not close cleanly", error=problem)

    # --- internals ---------------------------------------------------------------------------

    def _timeouts(self) -> AttemptTimeouts:
        timeouts: AttemptTimeouts = self.providers[self._index].config.timeouts
        return timeouts

    def _breaker_of(self, provider: STTProvider[Any]) -> Breaker | None:
        return self.breaker(provider) if self.breaker is not None else None

    async def _open_from(self, start: int) -> list[str]:
        """Open a stream on the first provider that will, from ``start`` round the chain. One
        whose circuit is open is skipped unless it is the last of the round, and tried only if
        none of the others opens."""
        errors: list[str] = []
        count = len(self.providers)
        skipped: list[int] = []
        for step in range(count):
            index = (start + step) % count
            provider = self.providers[index]
            breaker = self._breaker_of(provider)
            if breaker is not None and step < count - 1 and not breaker.allows():
                skipped.append(index)
                self._attempt(provider, current_clock().now(), None, breaker.describe())
                log.info("STT provider skipped: its circuit is open", provider=provider.name,
                         failures=breaker.failures)
                continue
            if await self._try_open(index, errors):
                return errors
        for index in skipped:  # something beats nothing
            if await self._try_open(index, errors):
                return errors
        return errors

    async def _try_open(self, index: int, errors: list[str]) -> bool:
        provider = self.providers[index]
        breaker = self._breaker_of(provider)
        requested = current_clock().now()
        try:
            stream = await within(provider.config.timeouts.connect, "open stream", provider.open_stream)
        except Exception as exc:  # noqa: BLE001 - the next one may work
            if breaker is not None:
                breaker.failed()
            errors.append(redact(f"{provider.name}: {type(exc).__name__}: {exc}"))
            self._attempt(provider, requested, None, _describe(exc))
            log.warning("STT could not open a stream, trying the next", provider=provider.name,
                        error=errors[-1])
            return False
        self._stream, self._index, self._dropped, self._unproven = stream, index, 0, breaker
        self._attempt(provider, requested, current_clock().now(), None)
        return True

    def _attempt(self, provider: STTProvider[Any], requested: float, opened: float | None,
                 error: str | None) -> None:
        record = AttemptRecord("stt", provider.name, requested, opened, error)
        for observer in self.observers:
            observer(record)

    def _settle(self, failure: str | None) -> None:
        """The breaker's verdict on the stream that is ending: a failure always counts; success
        only if the stream had not already proven itself."""
        if failure is not None:
            breaker = self._breaker_of(self.providers[self._index])
            if breaker is not None:
                breaker.failed()
            self._unproven = None
        else:
            self._proven()

    def _proven(self) -> None:
        breaker, self._unproven = self._unproven, None
        if breaker is not None:
            breaker.succeeded()

    async def _serve(self, stream: STTStream) -> tuple[str | None, bool]:
        """Run one stream until it fails (the error) or the call ends (``more`` is False)."""
        failure: str | None = None
        more = True
        timeouts = self._timeouts()

        sending_since: float | None = None
        open_requests: deque[int] = deque()
        clock = current_clock()
        spontaneous = type(stream).spontaneous_finals

        async with create_task_group() as tg:

            async def feed() -> None:
                nonlocal failure, more, sending_since
                try:
                    async for item in self._queue:
                        if isinstance(item, _Finalize):
                            open_requests.append(item.request)
                            await within(timeouts.first_byte, "finalize", stream.finalize)
                        elif isinstance(item, _SpeechStarted):
                            stream.speech_started(item.t)
                        else:
                            sending_since = time.monotonic()  # (per frame: no backend lookup)
                            with clock.busy():  # a virtual clock must not jump while it sends
                                await stream.send(item)
                            sending_since = None
                    more = False
                except Exception as exc:  # noqa: BLE001 - becomes a failed turn
                    failure = _describe(exc)
                tg.cancel_scope.cancel()

            async def watch_sends() -> None:
                """The ``idle`` deadline on ``send``, kept by one watcher instead of a cancel scope
                per 20 ms frame (this runs for every frame of every call)."""
                nonlocal failure
                while True:
                    await anyio.sleep(timeouts.idle / 4)
                    started = sending_since
                    if started is not None and time.monotonic() - started > timeouts.idle:
                        failure = f"send: no answer within {timeouts.idle:g} s"
                        tg.cancel_scope.cancel()
                        return

            async def listen() -> None:
                nonlocal failure
                try:
                    async for transcript in stream.transcripts():
                        if not isinstance(transcript, Transcript) or not isinstance(transcript.text, str):
                            failure = f"produced {type(transcript).__name__}, not a Transcript"
                            break
                        self._proven()
                        answers = None
                        if transcript.is_final and (transcript.finalized or not spontaneous) and open_requests:
                            answers = open_requests.popleft()
                        await self._out_send.send(Recognized(transcript, answers))
                    else:
                        failure = failure or "the transcript stream ended"
                except Exception as exc:  # noqa: BLE001 - becomes a failed turn
                    failure = failure or _describe(exc)
                tg.cancel_scope.cancel()

            tg.start_soon(feed)
            tg.start_soon(listen)
            tg.start_soon(watch_sends)
        return failure, more

    async def _idle_for(self, seconds: float) -> bool:
        """While no stream is open: drop audio, fail finalize requests at once; False once the
        call has ended. The wait is on the session clock, like the caller's audio it drops."""
        clock = current_clock()
        async with create_task_group() as tg:

            async def give_up_waiting() -> None:
                await clock.sleep(seconds)
                tg.cancel_scope.cancel()

            tg.start_soon(give_up_waiting)
            async for item in self._queue:
                if isinstance(item, _Finalize):
                    self._report("no speech recogniser is available")
            tg.cancel_scope.cancel()
            return False
        return True

    def _report(self, error: str) -> None:
        log.error("speech recognition failed", provider=self.provider_name, error=error)
        try:
            self._out_send.send_nowait(RecognizerFailed(self.provider_name, error))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass


class RecognizerUnavailable(Exception):
    """No provider of the STT chain could open a stream for this call."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProviderTimeout):
        return str(exc)  # "finalize: no answer within 4 s" says it all
    return redact(f"{type(exc).__name__}: {exc}")
