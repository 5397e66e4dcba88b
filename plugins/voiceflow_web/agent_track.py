"""The agent's voice as a WebRTC track: frames handed out at 20 ms intervals in real time.

aiortc pulls a track (``recv()``) as fast as it returns, so the track keeps time itself: frame
``k`` leaves at ``start + k × 20 ms``, agent audio when some is queued, silence otherwise. The
stream never pauses, which keeps RTP timestamps in step with frame numbers (what
:mod:`voiceflow_web.playout` relies on) and gives the browser's jitter buffer a steady line.

The queue is short (``buffer`` seconds): ``play()`` waits while it is full, so the voice runs
only a little ahead of the listener, and ``flush()`` (barge-in) empties it at once. What has left
already is in flight for a few tens of milliseconds and will be heard; its marks say so.
"""

from __future__ import annotations

import fractions
from collections import deque

import anyio
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame as AVFrame

from voiceflow.clock import Clock
from voiceflow.frames import FRAME_BYTES, FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE
from voiceflow.providers import OutFrame
from voiceflow_web.playout import PlayoutLedger

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
SILENCE = bytes(FRAME_BYTES)
MAX_LAG = 0.2
"""Seconds the track may fall behind its schedule (a stalled event loop) before it gives up
catching up: the debt becomes a gap rather than a burst the jitter buffer would have to absorb."""


class AgentTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, clock: Clock, ledger: PlayoutLedger, buffer_frames: int) -> None:
        super().__init__()
        self._clock = clock
        self._ledger = ledger
        self._capacity = buffer_frames
        self._queue: deque[OutFrame] = deque()
        self._space = anyio.Event()
        self._open = anyio.Event()
        self._start: float | None = None
        self._paused = False

    def open(self) -> None:
        """The page can hear: start sending (frame 0 is the first packet the page receives)."""
        self._open.set()

    async def play(self, out: OutFrame) -> None:
        while len(self._queue) >= self._capacity:
            await self._space.wait()
        self._queue.append(out)

    def flush(self) -> None:
        self._queue.clear()
        self._paused = False
        self._wake()

    def pause(self) -> None:
        """Send silence, keeping the queue (the caller may be interrupting): the page stops
        hearing the agent once what is already in its jitter buffer has played."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def recv(self) -> AVFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._open.wait()
        clock = self._clock
        index = self._ledger.sent
        if self._start is None:
            self._start = clock.now()
        due = self._start + index * FRAME_SECONDS
        if clock.now() - due > MAX_LAG:
            self._start += clock.now() - due
            due = clock.now()
        await clock.sleep_until(due)
        out = self._queue.popleft() if self._queue and not self._paused else None
        if out is not None:
            self._wake()
        pcm = out.frame.pcm if out is not None else SILENCE
        self._ledger.send(None if out is None else out.mark, due)
        return _av_frame(pcm.ljust(FRAME_BYTES, b"\0"), index)

    def _wake(self) -> None:
        self._space.set()
        self._space = anyio.Event()


def _av_frame(pcm: bytes, index: int) -> AVFrame:
    frame = AVFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
    frame.planes[0].update(pcm)
    frame.pts = index * FRAME_SAMPLES
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = TIME_BASE
    return frame
