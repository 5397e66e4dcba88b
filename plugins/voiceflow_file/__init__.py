"""The file transport: a caller recording in, the whole call out as a stereo WAV.

It behaves like a phone line, not like a batch job: caller frames arrive one every 20 ms (each
delivered when it would have finished arriving), agent audio is played out at 20 ms a frame, and
a barge-in flush drops what has not been played yet. On the virtual clock all of that happens
faster than real time while compute still counts in full, so the timeline shows live latencies.

The output WAV puts the caller on the left channel and the agent on the right, each sample at the
moment it was sent or heard, so the gaps you hear in it are the gaps a caller would hear.
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import anyio
import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from voiceflow.audio import read_wav, split_frames, write_wav
from voiceflow.clock import current_clock
from voiceflow.config.base import ProviderConfig
from voiceflow.frames import FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import CallTransport, OutFrame, PlayedCallback, SessionRunner, TransportProvider


class FileTransportConfig(ProviderConfig):
    provider: Literal["file"] = "file"
    input: Path | None = Field(None, description="The caller's recording (WAV, any rate; mixed to mono).")
    output: Path | None = Field(
        None, description="Where to write the whole call as a stereo WAV (caller left, agent right)."
    )
    start: Literal["after_greeting", "immediately"] = Field(
        "after_greeting",
        description="When the caller starts talking: once the agent's greeting has been heard "
        "(like a person would), or at once.",
    )
    lead_in: float = Field(0.3, ge=0, description="Seconds between the greeting's end and the caller.")
    realtime: bool = Field(False, description="Play in real time instead of on the virtual clock.")
    buffer_seconds: float = Field(
        1.0, gt=0, description="How much agent audio may wait ahead of playout (back-pressure)."
    )

    @field_validator("input", "output")
    @classmethod
    def _relative_to_agent_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Paths in an agent file are relative to that file, not to wherever it is run from."""
        base = (info.context or {}).get("base_dir")
        if value is None or value.is_absolute() or base is None:
            return value
        return (Path(base) / value).resolve()

    @field_validator("input")
    @classmethod
    def _input_is_a_wav(cls, value: Path | None) -> Path | None:
        """Refuse a bad recording when the agent loads, not halfway into the call."""
        if value is None:
            return value
        if not value.is_file():
            raise ValueError(f"no such recording: {value}")
        try:
            with wave.open(str(value), "rb") as wav:
                width = wav.getsampwidth()
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"{value} is not a WAV file ({exc}); convert it, e.g. with "
                             "`sox in.mp3 -b 16 out.wav`") from None
        if width != 2:
            raise ValueError(f"{value} has {8 * width}-bit samples; 16-bit PCM WAV is needed "
                             "(`sox in.wav -b 16 out.wav`)")
        return value


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
        self._out_send, self._out = anyio.create_memory_object_stream[OutFrame](frames)
        self._played: PlayedCallback = lambda mark, t: None
        self._greeting_done = anyio.Event()
        self._flushes = 0
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
        await self._out_send.send(out)

    def flush(self) -> None:
        self._flushes += 1
        while True:
            try:
                self._out.receive_nowait()
            except anyio.WouldBlock:
                return

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
            if flushes != self._flushes:
                continue  # flushed while waiting for its slot: never heard
            self._agent.put(start, out.frame.pcm)
            self._cursor = start + out.frame.duration
            self._played(out.mark, start)

    def close(self) -> None:
        self._out_send.close()
        self._out.close()

    def _tapes(self, origin: float) -> None:
        if self._caller is None:
            self._caller, self._agent = _Tape(origin), _Tape(origin)

    def write(self, path: Path) -> None:
        if self._caller is None or self._agent is None:
            return
        length = max(self._caller.length, self._agent.length)
        stereo = np.zeros((length, 2), dtype="<i2")
        stereo[: self._caller.length, 0] = self._caller.samples[: self._caller.length]
        stereo[: self._agent.length, 1] = self._agent.samples[: self._agent.length]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, stereo.tobytes(), channels=2)


class FileTransport(TransportProvider[FileTransportConfig]):
    """Plays a WAV recording into the agent and records both sides of the call to a WAV."""

    name = "file"
    config_model = FileTransportConfig

    async def serve(self, run_session: SessionRunner) -> None:
        pcm = read_wav(self.config.input) if self.config.input else b""
        call = FileCall(self.config, pcm)
        try:
            await run_session(call)
        finally:
            call.close()
            if self.config.output is not None:
                call.write(self.config.output)


@hookimpl
def register_transports(register: Any) -> None:
    register(FileTransport)
