"""One phone call over a Twilio media stream: caller audio in, agent audio out with a mark
after every frame, marks echoed back as what the caller heard, keypad digits to the session (and
to whoever else listens).

Two tasks run while the call does (:meth:`TwilioCall.run`, started again for a goodbye):

* the **reader** takes Twilio's messages: ``media`` becomes 20 ms frames at 16 kHz stamped with
  their capture time (:mod:`voiceflow_twilio.capture`), an echoed ``mark`` says a frame has been
  played to the caller, ``dtmf`` goes to the keypad listeners, ``stop`` (or the socket closing)
  is the caller hanging up. A malformed message, or silence longer than ``idle_timeout``, ends
  this call and only this call.
* the **writer** is the only task that writes to the socket; everything else posts to its
  outbox, so :meth:`flush` (barge-in) can be immediate: the frames not yet sent are dropped,
  ``clear`` is posted, and Twilio drops what it has not played.

What counts as heard: a frame is reported through ``on_played`` only when Twilio echoes the mark
that follows it, which it does once the audio before it has been played. Twilio also echoes, at
once, the marks of audio a ``clear`` threw away: so after a flush no mark sent before it counts.
That undercounts by the audio whose echo was still on its way when the flush happened (a
network round trip at most), and never counts audio the caller did not hear.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import structlog

from voiceflow.clock import Clock, current_clock
from voiceflow.frame_queue import FrameQueue
from voiceflow.frames import AudioFrame
from voiceflow.g711 import mulaw_encode
from voiceflow.providers import CallTransport, KeypadCallback, OutFrame, PlayedCallback
from voiceflow.serving.api import ServingLimits, watch_idle
from voiceflow.tasks import create_task_group
from voiceflow_twilio import protocol
from voiceflow_twilio.capture import CaptureFramer
from voiceflow_twilio.config import TwilioConfig
from voiceflow_twilio.protocol import Connected, Dtmf, Mark, Media, ProtocolError, Start, Stop
from voiceflow_twilio.rate import Downsampler

log = structlog.get_logger("voiceflow.twilio")

WIRE_FORMAT = "mulaw/8000"
CALLER_BUFFER_FRAMES = 50
"""Caller frames waiting for the VAD (1 s); beyond it the socket is read no faster."""
OUTBOX_ITEMS = 512
"""Frames (a media and a mark each) and clears waiting for the socket; a Twilio that lets this
fill has stopped reading."""



CallObserver = Callable[["TwilioCall"], None]
"""Told of each call before its session starts (:meth:`TwilioTransport.on_call`)."""


class Socket(Protocol):
    """What a call needs of its WebSocket: ASGI's own events, so Starlette's ``WebSocket`` (or
    any ASGI server's socket) serves as it is, with no adapter in between."""

    async def receive(self) -> MutableMapping[str, Any]:
        """The next ASGI event: ``websocket.receive`` (``text`` or ``bytes``) or ``websocket.disconnect``."""
        ...

    async def send_text(self, data: str) -> None: ...


async def receive_text(socket: Socket) -> str | None:
    """Twilio's next message; ``None`` once the socket has closed. Raises :class:`ProtocolError`
    for a binary message: Twilio only sends JSON text."""
    event = await socket.receive()
    if event["type"] == "websocket.disconnect":
        return None
    text = event.get("text")
    if not isinstance(text, str):
        raise ProtocolError("bad_message", "a binary message (Twilio sends JSON text)")
    return text


@dataclass(slots=True)
class _Sent:
    id: int
    mark: object
    seconds: float


class TwilioCall(CallTransport):
    wire_format = WIRE_FORMAT
    caller_audio_end_is_hangup = True

    def __init__(self, socket: Socket, start: Start, limits: ServingLimits, config: TwilioConfig) -> None:
        self.call_id = f"twilio-{start.call_sid}"
        self.clock = "real"
        self.start = start
        self.failure: ProtocolError | None = None
        """Why Twilio's side broke the call, if it did."""
        self.caller_hung_up = False
        """Twilio said ``stop`` or closed the socket: the call is already over on the phone."""
        self.heard_seconds = 0.0
        """Agent audio Twilio has confirmed played (echoed marks), over the whole call."""
        self._socket, self._limits, self._config = socket, limits, config
        self._frames = FrameQueue[AudioFrame](CALLER_BUFFER_FRAMES)
        self._outbox = FrameQueue[tuple[int | None, tuple[str, ...]]](OUTBOX_ITEMS)
        self._capture = CaptureFramer()
        self._downsample = Downsampler()
        self._generation = 0
        self._sent: deque[_Sent] = deque()
        self._unheard = 0.0
        self._next_id = 0
        self._progress = anyio.Event()
        self._played: PlayedCallback = lambda mark, t: None
        self._keypad: list[KeypadCallback] = []
        self._over = False
        self._disconnected = False

    # --- CallTransport ------------------------------------------------------------------------

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        async for frame in self._frames:
            yield frame

    async def play(self, out: OutFrame) -> None:
        """Send one frame and its mark, once no more than ``ahead`` seconds are unconfirmed."""
        generation = self._generation
        while self._unheard >= self._config.ahead and generation == self._generation:
            await self._progress.wait()
        if generation != self._generation:
            return  # a barge-in dropped it while it waited
        payload = out.wire if out.wire is not None else mulaw_encode(self._downsample(out.frame.pcm))
        self._next_id += 1
        self._sent.append(_Sent(self._next_id, out.mark, out.frame.duration))
        self._unheard += out.frame.duration
        self._post(generation, protocol.media(self.start.stream_sid, payload),
                   protocol.mark(self.start.stream_sid, str(self._next_id)))

    def flush(self) -> None:
        self._generation += 1
        self._sent.clear()
        self._unheard = 0.0
        self._downsample.reset()
        self._wake()
        self._post(None, protocol.clear(self.start.stream_sid))

    def on_played(self, callback: PlayedCallback) -> None:
        self._played = callback

    def notify(self, event: str, **data: Any) -> None:
        if event == "hangup":
            self._over = True  # caller audio is no longer wanted; marks still are (a goodbye)

    async def run(self) -> None:
        clock = current_clock()
        async with create_task_group() as tg:
            tg.start_soon(self._read, clock)
            tg.start_soon(self._write)

    # --- keypad -------------------------------------------------------------------------------

    def on_dtmf(self, callback: KeypadCallback) -> None:
        """Call ``callback(digit, t)`` for every key the caller presses from now on (Twilio's
        ``dtmf`` events). Several listeners may register: the session's (keys reach the turn
        manager) and an application's own (:meth:`TwilioTransport.on_call`). Digits pressed while
        nobody listens are dropped; they are never logged (they may be a PIN)."""
        self._keypad.append(callback)

    # --- from Twilio --------------------------------------------------------------------------

    async def _read(self, clock: Clock) -> None:
        try:
            async with watch_idle(clock, self._limits.idle_timeout) as idle:
                while not self._disconnected:
                    text = await receive_text(self._socket)
                    idle.heard()
                    if text is None:
                        self._disconnected = True
                        break
                    match protocol.parse(text, self._limits.max_message_bytes):
                        case Media() as media:
                            await self._caller_audio(media, clock.now())
                        case Mark(name=name):
                            self._acknowledge(name, clock.now())
                        case Dtmf(digit=digit):
                            self._pressed(digit, clock.now())
                        case Stop():
                            break
                        case Connected() | Start():
                            raise ProtocolError("bad_message", "the stream had already started")
            self._caller_gone()
        except TimeoutError:
            self._fail(ProtocolError("idle", f"nothing received for {self._limits.idle_timeout:g} s"))
        except ProtocolError as failure:
            self._fail(failure)

    async def _caller_audio(self, media: Media, now: float) -> None:
        if self._over:
            return
        for frame in self._capture.push(media.payload, media.timestamp_ms, now):
            try:
                await self._frames.send(frame)
            except anyio.ClosedResourceError:
                return  # the conversation is over

    def _acknowledge(self, name: str, t: float) -> None:
        """Twilio has played everything up to the frame marked ``name``, the last of it just now."""
        if not (name.isascii() and name.isdigit()):
            return  # not one of ours
        mark_id = int(name)
        if not self._sent or not self._sent[0].id <= mark_id <= self._sent[-1].id:
            return  # cleared (Twilio echoes those at once), already counted, or never sent
        heard: list[_Sent] = []
        while self._sent and self._sent[0].id <= mark_id:
            heard.append(self._sent.popleft())
        start = t - sum(frame.seconds for frame in heard)
        for frame in heard:
            self._unheard -= frame.seconds
            self.heard_seconds += frame.seconds
            self._played(frame.mark, start)
            start += frame.seconds
        if not self._sent:
            self._unheard = 0.0  # no rounding left behind
        self._wake()

    def _pressed(self, digit: str, t: float) -> None:
        log.info("keypad press", call_id=self.call_id, listeners=len(self._keypad))
        for callback in self._keypad:
            callback(digit, t)

    def _caller_gone(self) -> None:
        self.caller_hung_up = True
        self._frames.close()

    def _fail(self, failure: ProtocolError) -> None:
        if self.failure is None:
            self.failure = failure
            log.warning("twilio broke the call", call_id=self.call_id, code=failure.code, detail=str(failure))
        self._frames.close()

    # --- to Twilio ----------------------------------------------------------------------------

    async def _write(self) -> None:
        async for generation, messages in self._outbox:
            if generation is not None and generation != self._generation:
                continue  # audio a barge-in dropped before it was sent
            for text in messages:
                try:
                    await self._socket.send_text(text)
                except Exception:  # noqa: BLE001 - whatever the server stack raises, Twilio is gone
                    self._disconnected = True
                    self._caller_gone()
                    return

    def _post(self, generation: int | None, *messages: str) -> None:
        """Queue messages for the writer; ``generation`` None for control messages a flush keeps."""
        try:
            self._outbox.send_nowait((generation, messages))
        except anyio.WouldBlock:
            self._fail(ProtocolError("too_slow", "Twilio stopped reading the stream"))
        except anyio.ClosedResourceError:
            pass  # the call is closed

    def _wake(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    def close(self) -> None:
        self._frames.close()
        self._outbox.close()
