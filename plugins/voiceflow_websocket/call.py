"""One call over the WebSocket audio API: caller audio in, agent audio out in acknowledged
chunks, the call's events to the client.

Three tasks run while the call does (:meth:`WebSocketCall.run`):

* the **reader** takes the client's messages: audio becomes 20 ms frames stamped on the call's
  clock (paced, so a client sending faster than real time is read at real time), marks say what
  has been played, ``hangup`` ends the caller's side. A bad message or silence longer than
  ``idle_timeout`` ends this call, and only this call.
* the **chunker** sends agent audio in chunks of ``chunk_ms``, each followed by a mark, never
  more than ``ahead`` seconds beyond what the client has acknowledged: the client's buffer stays
  small, so a barge-in has little to throw away and the acknowledged audio is what was heard.
* the **writer** is the only task that writes to the socket; everything else posts to its
  outbox. ``flush`` (barge-in) is immediate: queued agent audio is dropped, ``clear`` is posted,
  and chunks posted before it are skipped unsent.

A client that says it ``pauses`` is told ``pause`` when the caller starts talking over the agent
(it holds what it has not played) and ``resume`` if that was not an interruption; meanwhile the
chunker sends nothing more. Other clients cannot be paused: the agent talks on until the
barge-in is decided, then ``clear`` drops the rest.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import structlog

from voiceflow.clock import Clock, current_clock
from voiceflow.frame_queue import FrameQueue
from voiceflow.frames import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.low_delay_resampler import LowDelayResampler
from voiceflow.providers import CallTransport, OutFrame, PlayedCallback
from voiceflow.serving.api import ClientError, CloseCode, ServingLimits, watch_idle
from voiceflow.tasks import create_task_group
from voiceflow_websocket.config import WebSocketConfig
from voiceflow_websocket.protocol import HangUp, Mark, Start, check_audio, message, parse

log = structlog.get_logger("voiceflow.websocket")

CALLER_BUFFER_FRAMES = 50
"""Caller frames waiting for the VAD (1 s); beyond it the socket is read no faster."""
OUTBOX_ITEMS = 256
"""Messages waiting for the socket; a client that lets this fill has stopped reading."""


class Gone(Exception):
    """The client is no longer there (closed, vanished, or the socket failed)."""


class Wire(Protocol):
    """What a call needs of its socket (the endpoint adapts its web framework's socket)."""

    async def receive(self) -> bytes | str | None:
        """The next message; ``None`` once the client has closed or vanished."""
        ...

    async def send(self, data: bytes | str) -> None:
        """Send one message; raises :class:`Gone` if the client is not there."""
        ...


@dataclass(slots=True)
class _Chunk:
    id: int
    frames: list[tuple[object, float]]
    """Each frame's playback mark and duration."""
    seconds: float
    due: float = math.inf
    """Clients that do not acknowledge: when the chunk will have played."""


class WebSocketCall(CallTransport):
    caller_audio_end_is_hangup = True

    def __init__(self, wire: Wire, start: Start, limits: ServingLimits, config: WebSocketConfig, call_id: str) -> None:
        self.call_id = call_id
        self.clock = "real"
        self.failure: ClientError | None = None
        """Why the client's side broke the call (reported to it in ``error``), if it did."""
        self._wire, self._start, self._limits, self._config = wire, start, limits, config
        # Queues that hand over without a trip through the loop: each is used for every frame.
        self._frames = FrameQueue[AudioFrame](CALLER_BUFFER_FRAMES)
        self._out = FrameQueue[OutFrame](max(1, round(config.ahead / FRAME_SECONDS)))
        self._outbox = FrameQueue[tuple[int | None, bytes | str]](OUTBOX_ITEMS)
        self._to_internal = LowDelayResampler(start.format.sample_rate, SAMPLE_RATE).process
        self._to_client = LowDelayResampler(SAMPLE_RATE, start.format.sample_rate).process
        self._pending = bytearray()
        self._cursor = -math.inf
        self._generation = 0
        self._sent: deque[_Chunk] = deque()
        self._unheard = 0.0
        self._next_id = 0
        self._progress = anyio.Event()
        self._play_cursor = -math.inf
        self._played: PlayedCallback = lambda mark, t: None
        self._over = False
        self._paused = False

    # --- CallTransport ------------------------------------------------------------------------

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        async for frame in self._frames:
            yield frame

    async def play(self, out: OutFrame) -> None:
        await self._out.send(out)

    def flush(self) -> None:
        self._generation += 1
        self._out.clear()
        self._sent.clear()
        self._to_client = LowDelayResampler(SAMPLE_RATE, self._start.format.sample_rate).process  # no tail of the dropped audio
        self._unheard = 0.0
        self._play_cursor = -math.inf
        self._paused = False  # the client ends a pause when it clears
        self._wake()
        self._post(None, message("clear"))

    def pause(self) -> bool:
        if not self._start.pauses:
            return False
        if not self._paused:
            self._paused = True
            self._post(None, message("pause"))
        return True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._post(None, message("resume"))
            self._wake()

    def on_played(self, callback: PlayedCallback) -> None:
        self._played = callback

    def send_dtmf(self, keys: str) -> bool:
        """Keys go to a client that asked for them (``receives_keys``) as a ``dtmf`` message,
        after the agent audio already sent; any other client hears them as tones."""
        if not self._start.receives_keys:
            return False
        self._post(None, message("dtmf", keys=keys))
        return True

    def notify(self, event: str, **data: Any) -> None:
        if event == "transcript":
            self._post(None, message("transcript", turn=data["turn"], text=data["text"]))
        elif event == "turn_started":
            self._post(None, message("turn", event="started", turn=data["turn"], kind=data["kind"]))
        elif event == "turn_ended":
            m2e = data.pop("mouth_to_ear", None)
            ms = None if m2e is None else round(1000 * m2e)
            self._post(None, message("turn", event="ended", **data, mouth_to_ear_ms=ms))
        elif event == "hangup":
            self._over = True

    async def run(self) -> None:
        """The call's socket work; started again for a goodbye after the conversation."""
        clock = current_clock()
        async with create_task_group() as tg:
            tg.start_soon(self._read, clock)
            tg.start_soon(self._chunk_agent_audio, clock)
            tg.start_soon(self._write)
            if not self._start.acknowledges_marks:
                tg.start_soon(self._assume_played, clock)

    async def send_remaining_events(self) -> None:
        """Once the call is over: send the events still queued (the last turn's end), dropping
        any agent audio with them; raises :class:`Gone` if the client has left."""
        while True:
            try:
                generation, data = self._outbox.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                return
            if generation is None and isinstance(data, str):
                await self._wire.send(data)

    def close(self) -> None:
        for queue in (self._frames, self._out, self._outbox):
            queue.close()

    # --- from the client ----------------------------------------------------------------------

    async def _read(self, clock: Clock) -> None:
        try:
            async with watch_idle(clock, self._limits.idle_timeout) as idle:
                while True:
                    data = await self._wire.receive()
                    idle.heard()
                    match data:
                        case None:
                            self._end_caller_audio()
                            return
                        case bytes():
                            check_audio(data, self._limits.max_message_bytes)
                            await self._caller_audio(data, clock)
                        case str():
                            self._control(data, clock)
        except TimeoutError:
            self._fail(ClientError("idle", f"nothing received for {self._limits.idle_timeout:g} s", CloseCode.NORMAL))
        except ClientError as failure:
            self._fail(failure)

    def _control(self, text: str, clock: Clock) -> None:
        match parse(text):
            case Mark(id=mark_id):
                self._acknowledge(mark_id, clock.now())
            case HangUp():
                self._end_caller_audio()
            case Start():
                raise ClientError("bad_message", "start was already received")

    async def _caller_audio(self, data: bytes, clock: Clock) -> None:
        """Cut into frames and stamp them with when they were captured: a message arriving now
        holds the last stretch of audio, unless the client is ahead of real time, in which case
        the frames are taken when their time comes."""
        if self._over:
            return
        self._pending += self._to_internal(data)
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        frames = [bytes(self._pending[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]
        del self._pending[:whole]
        now = clock.now()
        for i, pcm in enumerate(frames):
            t = max(self._cursor, now - (len(frames) - i) * FRAME_SECONDS)
            self._cursor = t + FRAME_SECONDS
            if self._cursor > now:  # a client ahead of real time: the frame is taken when due
                await clock.sleep_until(self._cursor)
            try:
                await self._frames.send(AudioFrame(pcm, t))
            except anyio.ClosedResourceError:
                return  # the conversation is over

    def _acknowledge(self, mark_id: int, t: float) -> None:
        """Everything up to mark ``mark_id`` has been played, the last of it just now."""
        if not self._sent or mark_id < self._sent[0].id:
            return  # cleared, already acknowledged, or never sent: nothing to learn
        heard: list[_Chunk] = []
        while self._sent and self._sent[0].id <= mark_id:
            heard.append(self._sent.popleft())
        start = t - sum(chunk.seconds for chunk in heard)
        for chunk in heard:
            self._unheard -= chunk.seconds
            for mark, seconds in chunk.frames:
                self._played(mark, start)
                start += seconds
        self._wake()

    def _end_caller_audio(self) -> None:
        self._frames.close()

    def _fail(self, failure: ClientError) -> None:
        if self.failure is None:
            self.failure = failure
            log.warning("client broke the call", call_id=self.call_id, code=failure.code, detail=str(failure))
        self._end_caller_audio()

    # --- to the client ------------------------------------------------------------------------

    async def _chunk_agent_audio(self, clock: Clock) -> None:
        most = self._config.chunk_ms // 20
        async for first in self._out:
            frames = [first]
            while len(frames) < most and len(self._out):
                frames.append(self._out.receive_nowait())
            generation = self._generation
            while (self._unheard >= self._config.ahead or self._paused) and generation == self._generation:
                await self._wait_progress()
            if generation != self._generation:
                continue  # a barge-in dropped it while it waited
            self._next_id += 1
            pcm = b"".join(out.frame.pcm for out in frames)
            chunk = _Chunk(self._next_id, [(out.mark, out.frame.duration) for out in frames], len(pcm) / (2 * SAMPLE_RATE))
            if not self._start.acknowledges_marks:
                self._play_cursor = chunk.due = max(clock.now(), self._play_cursor) + chunk.seconds
            self._sent.append(chunk)
            self._unheard += chunk.seconds
            self._wake()
            self._post(generation, self._to_client(pcm))
            self._post(generation, message("mark", id=chunk.id))

    async def _assume_played(self, clock: Clock) -> None:
        """For clients that do not acknowledge: each chunk counts as heard in real time."""
        while True:
            if not self._sent:
                await self._wait_progress()
                continue
            chunk = self._sent[0]
            await clock.sleep_until(chunk.due)
            if self._sent and self._sent[0] is chunk:
                self._acknowledge(chunk.id, chunk.due)

    async def _write(self) -> None:
        try:
            async for generation, data in self._outbox:
                if generation is None or generation == self._generation:
                    await self._wire.send(data)
        except Gone:
            self._fail(ClientError("gone", "the client went away", CloseCode.NORMAL))

    def _post(self, generation: int | None, data: bytes | str) -> None:
        try:
            self._outbox.send_nowait((generation, data))
        except anyio.WouldBlock:
            self._fail(ClientError("too_slow", "the client stopped reading", CloseCode.POLICY))
        except anyio.ClosedResourceError:
            pass  # the call is closed

    async def _wait_progress(self) -> None:
        await self._progress.wait()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()
