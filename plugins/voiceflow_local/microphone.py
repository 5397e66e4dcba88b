"""The caller's side: the input device's blocks become the agent's 20 ms frames at 16 kHz.

A microphone runs at its own rate (44.1 or 48 kHz, usually) and PortAudio hands over blocks of
whatever size suits the device. Each block is mixed to mono and fed through a streaming
resampler (soxr at a low-delay quality, as on every live line); the output is cut into 20 ms
frames. Each frame is stamped with when its first sample was captured: the block's ADC time
from PortAudio, less the audio the resampler still holds back (known exactly, from the samples
it took and gave), so the turn timeline measures from the caller's mouth, not from when Python
got round to the block.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import structlog

from voiceflow.audio import Resampler
from voiceflow.clock import current_clock
from voiceflow.frames import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow_local.device_time import StreamClock, ToLoop

QUEUE_BLOCKS = 256
"""Device blocks that may wait for the event loop (seconds of audio even at small blocks); a loop
stalled longer loses the oldest audio, which the frames' time stamps then show as a gap."""

STALL_SECONDS = 3.0
"""A microphone silent this long (not quiet: no blocks at all) has gone away; some host APIs
never say so when a device is unplugged."""

log = structlog.get_logger("voiceflow.local")


@dataclass(frozen=True, slots=True)
class _Block:
    samples: npt.NDArray[np.int16]
    captured: float
    """``time.monotonic()`` when the block's first sample was captured."""


class CaptureFramer:
    """Resamples mono blocks to 16 kHz and cuts them into frames stamped with capture time."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler = Resampler(rate, SAMPLE_RATE, quality="LQ")
        self._pending = bytearray()
        self._taken = 0
        self._given = 0
        self._next = -float("inf")

    def push(self, mono: bytes, captured: float) -> list[AudioFrame]:
        """The whole frames this block completes (``captured``: its first sample's time)."""
        out = self._resampler.process(mono)
        self._taken += len(mono) // 2
        self._given += len(out) // 2
        self._pending += out
        held = self._taken / self.rate - self._given / SAMPLE_RATE
        block_end = captured + len(mono) / 2 / self.rate
        pending_end = block_end - held
        count = len(self._pending) // FRAME_BYTES
        frames = []
        for i in range(count):
            after = (len(self._pending) - i * FRAME_BYTES) // 2
            # Stamps follow the capture clock, but never overlap: a device running a little fast
            # against the monotonic clock shifts a frame by microseconds rather than reorder.
            t = max(pending_end - after / SAMPLE_RATE, self._next)
            self._next = t + FRAME_SECONDS
            frames.append(AudioFrame(bytes(self._pending[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]), t))
        del self._pending[: count * FRAME_BYTES]
        return frames


class Microphone:
    """The input stream's callback on one side, :meth:`frames` for the call on the other."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate = rate
        self.channels = channels
        self.latency = 0.0
        """The stream's nominal input latency: the capture delay when the host API reports none."""
        self.overflows = 0
        """Blocks in which the device had to drop input (the computer did not keep up)."""
        self.dropped = 0
        """Blocks lost because the event loop did not take them in time."""
        self.stall_after = STALL_SECONDS
        self._send, self._receive = anyio.create_memory_object_stream[_Block](QUEUE_BLOCKS)
        self._to_loop: ToLoop | None = None
        self.clock = StreamClock()
        """The input stream's clock (set once the stream is open)."""

    def attach(self) -> None:
        """Bind to the running event loop; call before the stream starts."""
        self._to_loop = ToLoop()

    def callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: copy the block and note when it was captured, nothing more."""
        captured = self.clock.monotonic(time_info.inputBufferAdcTime, -(self.latency + frames / self.rate))
        block = _Block(np.array(indata, dtype=np.int16), captured)
        if self._to_loop is not None:
            self._to_loop(self._deliver, block, bool(status.input_overflow))

    def stopped(self) -> None:
        """PortAudio's thread: the stream has ended (closed, or the device went away)."""
        if self._to_loop is not None:
            self._to_loop(self._send.close)

    def _deliver(self, block: _Block, overflow: bool) -> None:
        self.overflows += overflow
        try:
            self._send.send_nowait(block)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """20 ms frames at 16 kHz, stamped on the session's clock; ends with the stream, or when
        the device stops delivering (a live microphone always does, silence included)."""
        clock = current_clock()
        framer = CaptureFramer(self.rate)
        async with self._receive, self._send:  # closed after: later blocks are dropped
            while True:
                block: _Block | None = None
                with anyio.move_on_after(self.stall_after):  # never around a yield
                    try:
                        block = await self._receive.receive()
                    except anyio.EndOfStream:
                        return
                if block is None:
                    log.warning("the microphone stopped delivering audio: hanging up", seconds=self.stall_after)
                    return
                offset = clock.now() - time.monotonic()
                for frame in framer.push(_mono(block.samples), block.captured):
                    yield AudioFrame(frame.pcm, frame.t + offset)


def _mono(samples: npt.NDArray[np.int16]) -> bytes:
    if samples.ndim == 2 and samples.shape[1] > 1:
        mixed = samples.astype(np.int32).sum(axis=1) // samples.shape[1]
        return bytes(mixed.astype("<i2").tobytes())
    return bytes(samples.astype("<i2", copy=False).tobytes())

