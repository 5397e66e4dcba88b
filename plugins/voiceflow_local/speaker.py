"""The agent's side: its frames queued for the output device, and when each one is heard.

The device keeps time: PortAudio asks for a block whenever the sound card needs one, and the
callback fills it from the queue (silence when the queue is empty). Nothing else paces playback,
so the agent's voice runs exactly at the sound card's rate.

*Heard* means heard: a frame's mark is reported at the moment its first sample leaves the
converter, which the callback knows from PortAudio's DAC time (the sound card's and the sound
server's buffering included), not when Python handed it over. The mark is reported at that
moment, not before, so a caller who interrupts has heard only what had really played.

:meth:`Speaker.flush` (barge-in) empties the queue at once and forgets the marks not yet reported.
Audio already handed to PortAudio (one device buffer: the output latency) cannot be recalled; it
plays out, but no longer counts, as with a phone line's ``clear``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from voiceflow.audio import Resampler
from voiceflow.clock import current_clock
from voiceflow.frames import SAMPLE_RATE
from voiceflow.providers import OutFrame, PlayedCallback
from voiceflow_local.device_time import StreamClock, ToLoop

Samples = npt.NDArray[np.int16]


@dataclass(slots=True)
class _Chunk:
    samples: Samples
    mark: object | None
    position: int = 0


@dataclass(frozen=True, slots=True)
class _Heard:
    mark: object
    at: float
    """``time.monotonic()`` when the frame's first sample is heard."""


@dataclass(frozen=True, slots=True)
class _Block:
    """What one device callback did, reported to the event loop."""

    generation: int
    heard: list[_Heard]
    start: float
    """When the block's first sample is heard (``time.monotonic()``)."""
    voiced: float
    """Seconds of the agent's audio at the start of the block (the rest was silence)."""
    dry: bool
    """The queue ran out in this block after some of it was played."""


class Speaker:
    """Agent audio from :meth:`play` to the output stream's callback, with back-pressure."""

    def __init__(self, rate: int, buffer_seconds: float) -> None:
        self.rate = rate
        self.latency = 0.0
        """The stream's nominal output latency: the playout delay when the host API reports none."""
        self.underflows = 0
        """Callbacks in which the device ran short (the computer did not keep up)."""
        self._capacity = max(1, round(buffer_seconds * rate))
        self._lock = threading.Lock()
        self._queue: deque[_Chunk] = deque()
        self._queued = 0
        self._generation = 0
        self._paused = False
        self._room = anyio.Event()
        self._heard: deque[_Heard] = deque()
        self._news = anyio.Event()
        self._spans: deque[tuple[float, float]] = deque(maxlen=16)
        self._played: PlayedCallback = lambda mark, t: None
        self._resampler = Resampler(SAMPLE_RATE, rate, quality="LQ")
        self._to_loop: ToLoop | None = None
        self.clock = StreamClock()
        """The output stream's clock (set once the stream is open)."""

    def attach(self) -> None:
        """Bind to the running event loop; call before the stream starts."""
        self._to_loop = ToLoop()

    def on_played(self, callback: PlayedCallback) -> None:
        self._played = callback

    # --- the event loop's side ----------------------------------------------------------------

    async def play(self, out: OutFrame) -> None:
        """Queue one frame; waits while ``buffer_seconds`` of audio are already queued."""
        samples = np.frombuffer(self._resampler.process(out.frame.pcm), dtype="<i2")
        while self._queued >= self._capacity:
            room = self._room
            await room.wait()
        self._enqueue(_Chunk(samples, out.mark))

    def flush(self) -> None:
        """Drop every queued sample and every mark not yet reported, at once."""
        with self._lock:
            self._queue.clear()
            self._queued = 0
            self._generation += 1
            self._paused = False
        self._heard.clear()
        self._resampler = Resampler(SAMPLE_RATE, self.rate, quality="LQ")
        self._wake()

    def pause(self) -> bool:
        """Play silence from the next device block on, keeping the queue for :meth:`resume`."""
        with self._lock:
            self._paused = True
        return True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def audible(self, start: float, end: float, tail: float) -> bool:
        """Whether the agent's voice is heard at any moment from ``start`` to ``end`` (session
        clock), or was heard less than ``tail`` seconds before ``start``."""
        offset = current_clock().now() - time.monotonic()
        return any(s + offset < end and start < e + offset + tail for s, e in self._spans)

    def heard_by(self) -> float:
        """When (``time.monotonic()``) everything handed to the device so far will have been heard."""
        return self._spans[-1][1] if self._spans else 0.0

    async def report_heard(self) -> None:
        """Report each mark at the moment its frame is heard (runs for the whole call)."""
        clock = current_clock()
        while True:
            if not self._heard:
                news = self._news
                await news.wait()
                continue
            item = self._heard[0]
            offset = clock.now() - time.monotonic()
            await clock.sleep_until(item.at + offset)
            if self._heard and self._heard[0] is item:  # else flushed while waiting
                self._heard.popleft()
                self._played(item.mark, item.at + offset)

    def _enqueue(self, chunk: _Chunk) -> None:
        with self._lock:
            self._queue.append(chunk)
            self._queued += len(chunk.samples)

    def _wake(self) -> None:
        self._room.set()
        self._room = anyio.Event()

    def _after_block(self, block: _Block) -> None:
        if block.voiced:  # audible whatever happens next: it is in the device's hands
            end = block.start + block.voiced
            if self._spans and block.start <= self._spans[-1][1] + 0.001:
                self._spans[-1] = (self._spans[-1][0], end)
            else:
                self._spans.append((block.start, end))
        if block.generation != self._generation:
            return  # played before a flush: no longer counts as heard
        if block.heard:
            self._heard.extend(block.heard)
            self._news.set()
            self._news = anyio.Event()
        if block.dry:
            # The resampler holds the last few milliseconds back until more audio comes; the
            # reply may be over, so play them now and start the next reply from a clean filter.
            tail = self._resampler.process(b"", last=True)
            self._resampler = Resampler(SAMPLE_RATE, self.rate, quality="LQ")
            if tail:
                self._enqueue(_Chunk(np.frombuffer(tail, dtype="<i2"), None))
        self._wake()

    # --- PortAudio's thread -------------------------------------------------------------------

    def callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """Fill the device's block from the queue; note when each frame in it will be heard."""
        start = self.clock.monotonic(time_info.outputBufferDacTime, self.latency)
        block = np.zeros(frames, dtype=np.int16)
        heard: list[_Heard] = []
        written = 0
        with self._lock:
            generation = self._generation
            while not self._paused and written < frames and self._queue:
                chunk = self._queue[0]
                if chunk.position == 0 and chunk.mark is not None:
                    heard.append(_Heard(chunk.mark, start + written / self.rate))
                count = min(frames - written, len(chunk.samples) - chunk.position)
                block[written : written + count] = chunk.samples[chunk.position : chunk.position + count]
                chunk.position += count
                written += count
                if chunk.position >= len(chunk.samples):
                    self._queue.popleft()
            self._queued -= written
            dry = written > 0 and not self._queue
        outdata[:] = block.reshape(-1, 1)  # the same on every channel
        self.underflows += bool(status.output_underflow)
        if (written or heard) and self._to_loop is not None:
            self._to_loop(self._after_block, _Block(generation, heard, start, written / self.rate, dry))

