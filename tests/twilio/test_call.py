"""One call's transport on its own, over an in-memory socket and a hand-set clock: exactly what
counts as heard, what a clear drops, what is sent, what reaches the keypad listeners, and how
caller audio is framed and stamped."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import numpy as np
import pytest

from voiceflow.clock import using_clock
from voiceflow.frames import FRAME_BYTES, FRAME_SECONDS, AudioFrame
from voiceflow.g711 import mulaw_encode
from voiceflow.providers import OutFrame
from voiceflow.serving.api import ServingLimits
from voiceflow_twilio import TwilioCall, TwilioConfig
from voiceflow_twilio.capture import CaptureFramer
from voiceflow_twilio.protocol import Start
from voiceflow_twilio.rate import DELAY_SECONDS, Downsampler

pytestmark = pytest.mark.anyio

STREAM = "MZ" + "2" * 32
START = Start(STREAM, "CA" + "1" * 32, "AC" + "3" * 32)
LIMITS = ServingLimits(max_sessions=1, max_message_bytes=65_536, idle_timeout=5.0)


class HandClock:
    """A clock that moves only when the test says."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep(0)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(0)

    @contextmanager
    def busy(self) -> Iterator[None]:
        yield


class MemorySocket:
    """Twilio's end of the socket, as the ASGI events the call reads."""

    def __init__(self) -> None:
        self._in, self._inbox = anyio.create_memory_object_stream[dict[str, Any]](100)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.receive()

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def twilio_says(self, message: dict[str, Any] | str | bytes | None) -> None:
        """A message (``None``: Twilio closes the socket)."""
        match message:
            case None:
                event: dict[str, Any] = {"type": "websocket.disconnect", "code": 1000}
            case bytes():
                event = {"type": "websocket.receive", "bytes": message}
            case str():
                event = {"type": "websocket.receive", "text": message}
            case _:
                event = {"type": "websocket.receive", "text": json.dumps(message)}
        await self._in.send(event)
        for _ in range(20):  # let the reader take it
            await anyio.sleep(0)

    def close(self) -> None:
        self._in.close()
        self._inbox.close()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["event"] == kind]


@asynccontextmanager
async def running_call(**config: Any) -> AsyncIterator[tuple[TwilioCall, MemorySocket, HandClock]]:
    socket, clock = MemorySocket(), HandClock()
    call = TwilioCall(socket, START, LIMITS, TwilioConfig(**config))
    try:
        with using_clock(clock):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call.run)
                yield call, socket, clock
                tg.cancel_scope.cancel()
    finally:
        call.close()
        socket.close()


def frame(level: float = 0.2, samples: int = 320) -> AudioFrame:
    t = np.arange(samples) / 16000
    return AudioFrame((level * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())


async def settle() -> None:
    for _ in range(20):
        await anyio.sleep(0)


async def test_each_frame_goes_out_as_160_bytes_of_mulaw_and_its_mark() -> None:
    async with running_call() as (call, socket, _):
        pcm = frame()
        await call.play(OutFrame(pcm, "a"))
        await settle()
    media, mark = socket.sent
    assert media["event"] == "media" and media["streamSid"] == STREAM
    assert base64.b64decode(media["media"]["payload"]) == mulaw_encode(Downsampler()(pcm.pcm))
    assert mark == {"event": "mark", "streamSid": STREAM, "mark": {"name": "1"}}
    assert call.wire_format == "mulaw/8000"


async def test_a_voices_own_mulaw_is_sent_untouched() -> None:
    wire = bytes(range(160))
    async with running_call() as (call, socket, _):
        await call.play(OutFrame(frame(), "a", wire))
        await settle()
    assert base64.b64decode(socket.events("media")[0]["media"]["payload"]) == wire


async def test_an_echoed_mark_reports_every_frame_up_to_it_as_heard_back_to_back() -> None:
    heard: list[tuple[object, float]] = []
    async with running_call() as (call, socket, clock):
        call.on_played(lambda mark, t: heard.append((mark, t)))
        for name in "abc":
            await call.play(OutFrame(frame(), name))
        await settle()
        clock.t = 101.0
        await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": "2"}})
        assert heard == [("a", pytest.approx(100.96)), ("b", pytest.approx(100.98))]
        await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": "2"}})  # again
        await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": "not ours"}})
        assert len(heard) == 2
        clock.t = 101.02
        await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": "3"}})
    assert heard[2] == ("c", pytest.approx(101.0))
    assert call.heard_seconds == pytest.approx(0.06)


async def test_after_a_clear_the_marks_twilio_echoes_for_the_dropped_audio_never_count() -> None:
    heard: list[object] = []
    async with running_call() as (call, socket, _):
        call.on_played(lambda mark, t: heard.append(mark))
        for name in "abcd":
            await call.play(OutFrame(frame(), name))
        await settle()
        await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": "1"}})
        call.flush()  # barge-in
        await settle()
        for name in ("2", "3", "4"):  # Twilio echoes the cleared marks at once
            await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": name}})
        await call.play(OutFrame(frame(), "e"))  # the next reply
        await settle()
        await socket.twilio_says({"event": "mark", "streamSid": STREAM, "mark": {"name": "5"}})
    assert heard == ["a", "e"]
    assert [m["event"] for m in socket.sent].count("clear") == 1
    assert socket.sent.index({"event": "clear", "streamSid": STREAM}) == 8  # after the four frames


async def test_no_more_than_ahead_is_unconfirmed_and_a_frame_waiting_when_cleared_is_dropped() -> None:
    async with running_call(ahead=0.1) as (call, socket, _):
        for name in range(5):  # 100 ms: the limit
            await call.play(OutFrame(frame(), name))
        waiting = anyio.Event()

        async def sixth() -> None:
            await call.play(OutFrame(frame(), "late"))
            waiting.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sixth)
            await settle()
            assert len(socket.events("media")) == 5 and not waiting.is_set()
            call.flush()
        await settle()
        assert len(socket.events("media")) == 5  # dropped, not sent after the clear
        await call.play(OutFrame(frame(), "next"))
        await settle()
    assert len(socket.events("media")) == 6


async def test_keypad_digits_reach_every_listener_with_their_time() -> None:
    first: list[tuple[str, float]] = []
    second: list[str] = []
    async with running_call() as (call, socket, clock):
        call.on_dtmf(lambda digit, t: first.append((digit, t)))
        call.on_dtmf(lambda digit, t: second.append(digit))
        for digit in "5#":
            clock.t += 0.5
            await socket.twilio_says({"event": "dtmf", "streamSid": STREAM, "sequenceNumber": "9",
                                      "dtmf": {"track": "inbound_track", "digit": digit}})
    assert first == [("5", 100.5), ("#", 101.0)] and second == ["5", "#"]


async def caller_frames(call: TwilioCall) -> list[AudioFrame]:
    return [f async for f in call.caller_audio()]


@pytest.mark.parametrize("ending", [{"event": "stop", "streamSid": STREAM, "stop": {}}, None])
async def test_stop_or_a_closed_socket_is_the_caller_hanging_up(ending: dict[str, Any] | None) -> None:
    async with running_call() as (call, socket, _):
        await socket.twilio_says(media(0))
        await socket.twilio_says(ending)
        with anyio.fail_after(5):
            frames = await caller_frames(call)
    assert call.caller_hung_up and call.failure is None and len(frames) == 1


@pytest.mark.parametrize(("message", "code"), [
    (b"\x00\x01", "bad_message"), ("{", "bad_message"),
    ({"event": "connected", "protocol": "Call"}, "bad_message"),
    ({"event": "media", "media": {"payload": "%%%"}}, "bad_media"),
])
async def test_a_malformed_message_ends_the_call_with_its_reason(message: Any, code: str) -> None:
    async with running_call() as (call, socket, _):
        await socket.twilio_says(message)
        with anyio.fail_after(5):
            await caller_frames(call)
    assert call.failure is not None and call.failure.code == code and not call.caller_hung_up


def media(chunk: int, payload: bytes = b"\xff" * 160) -> dict[str, Any]:
    return {"event": "media", "streamSid": STREAM, "sequenceNumber": str(chunk + 3), "media": {
        "track": "inbound", "chunk": str(chunk + 1), "timestamp": str(chunk * 20),
        "payload": base64.b64encode(payload).decode()}}


def test_caller_frames_are_stamped_on_twilios_timeline_never_after_they_arrived() -> None:
    framer = CaptureFramer()
    # Chunks 0 and 1 come late, 2 and 3 quicker, then the network is steady (TCP keeps the order).
    arrivals = [10.090, 10.095, 10.096, 10.117, 10.150, 10.140 + 0.021, 10.190]
    stamps: list[float] = []
    for chunk, arrived in enumerate(arrivals):
        frames = framer.push(b"\xff" * 160, chunk * 20, arrived)
        assert len(frames) == 1 and len(frames[0].pcm) == FRAME_BYTES
        assert frames[0].t <= arrived - DELAY_SECONDS  # captured before it arrived
        stamps.append(frames[0].t)
    assert stamps == sorted(stamps)
    # The quickest message (chunk 2: audio ending at 60 ms on Twilio's clock, here at 10.096)
    # fixes the offset; the frames stamped late before it are caught up with within a frame, and
    # from then on every frame sits on Twilio's timeline, 20 ms apart, late arrivals or not.
    offset = 10.096 - 0.060
    assert stamps[4:] == pytest.approx([offset + chunk * FRAME_SECONDS - DELAY_SECONDS for chunk in (4, 5, 6)])


def test_payloads_of_any_length_make_whole_20_ms_frames() -> None:
    framer = CaptureFramer()
    frames = [f for i in range(7) for f in framer.push(b"\xff" * 100, None, 20.0 + i * 0.0125)]
    assert len(frames) == 4 and all(len(f.pcm) == FRAME_BYTES for f in frames)  # 700 samples: 87.5 ms
