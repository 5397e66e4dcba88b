"""One call over the file transport: the recording played in as a phone line would, both sides
recorded on the call's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from voiceflow.audio import split_frames, write_wav
from voiceflow.clock import current_clock
from voiceflow.frame_queue import FrameQueue
from voiceflow.frames import FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.providers import CallTransport, OutFrame, PlayedCallback
from voiceflow_file.config import FileTransportConfig


class _Tape:
    """A growable mono track addressed by clock time."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.samples = np.zeros(SAMPLE_RATE * 10, dtype="<i2")
        self.length = 0

    def put(self, t: float, pcm: bytes) -> None:
        start = max(0, round((t - self.origin) * SAMPLE_RATE))
        data = np.frombuffer(pcm, dtype="<i2")
        end = start + len(data)
        if end > len(self.samples):
            grown = np.zeros(max(end, 2 * len(self.samples)), dtype="<i2")
            grown[: len(self.samples)] = self.samples
            self.samples = grown
        self.samples[start:end] = data
        self.length = max(self.length, end)


class FileCall(CallTransport):
    caller_audio_end_is_hangup = False

    def __init__(self, config: FileTransportConfig, pcm: bytes) -> None:
        self.config = config
        self.call_id = f"file:{config.input.name if config.input else 'silence'}"
        self.clock = "real" if config.realtime else "virtual"
        self._pcm = pcm
        frames = max(1, round(config.buffer_seconds / FRAME_SECONDS))
        self._out = FrameQueue[OutFrame](frames)
        self._played: PlayedCallback = lambda mark, t: None
        self._greeting_done = anyio.Event()
        self._flushes = 0
        self._playing = anyio.Event()
        self._playing.set()
        self._cursor = 0.0
        self._caller: _Tape | None = None
        self._agent: _Tape | None = None

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        clock = current_clock()
        self._tapes(clock.now())
        if self.config.start == "after_greeting":
            await self._greeting_done.wait()
        t0 = clock.now() + self.config.lead_in
        assert self._caller is not None
        for i, pcm in enumerate(split_frames(self._pcm)):
            t = t0 + i * FRAME_SECONDS
            await clock.sleep_until(t + FRAME_SECONDS)  # a frame exists once all of it has arrived
            self._caller.put(t, pcm)
            yield AudioFrame(pcm, t)

    async def play(self, out: OutFrame) -> None:
        await self._out.send(out)

    def flush(self) -> None:
        self._flushes += 1
        self._playing.set()  # nothing left to hold
        self._out.clear()

    def pause(self) -> bool:
        if self._playing.is_set():
            self._playing = anyio.Event()
        return True

    def resume(self) -> None:
        self._playing.set()

    def on_played(self, callback: PlayedCallback) -> None:
        self._played = callback

    def notify(self, event: str, **data: Any) -> None:
        if event == "greeting_done":
            self._greeting_done.set()

    async def run(self) -> None:
        """Playout: frames back to back at 20 ms each; an underrun is silence on the line."""
        clock = current_clock()
        self._tapes(clock.now())
        assert self._agent is not None
        async for out in self._out:
            flushes = self._flushes
            start = max(clock.now(), self._cursor)
            await clock.sleep_until(start)
            while not self._playing.is_set() and flushes == self._flushes:
                await self._playing.wait()  # paused: the frame waits, held, for resume or flush
                start = max(clock.now(), self._cursor)
            if flushes != self._flushes:
                continue  # flushed while waiting for its slot: never heard
            self._agent.put(start, out.frame.pcm)
            self._cursor = start + out.frame.duration
            self._played(out.mark, start)

    def close(self) -> None:
        self._out.close()

    def _tapes(self, origin: float) -> None:
        if self._caller is None:
            self._caller, self._agent = _Tape(origin), _Tape(origin)

    def tracks(self) -> tuple[bytes, bytes]:
        """(caller, agent) as heard, PCM16 at 16 kHz from the call's start, equal lengths."""
        if self._caller is None or self._agent is None:
            return b"", b""
        length = max(self._caller.length, self._agent.length)
        caller, agent = np.zeros(length, dtype="<i2"), np.zeros(length, dtype="<i2")
        caller[: self._caller.length] = self._caller.samples[: self._caller.length]
        agent[: self._agent.length] = self._agent.samples[: self._agent.length]
        return caller.tobytes(), agent.tobytes()

    def write(self, path: Path) -> None:
        if self._caller is None or self._agent is None:
            return
        caller, agent = self.tracks()
        stereo = np.stack([np.frombuffer(caller, "<i2"), np.frombuffer(agent, "<i2")], axis=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, stereo.tobytes(), channels=2)
