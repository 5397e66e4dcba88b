"""PCM conversions at the edges: int16 ↔ float32, resampling, framing, WAV files.

Resampling uses soxr (libsoxr's VHQ/HQ resamplers, streaming, no heavy dependencies): a TTS voice
at 22,050 Hz or a phone line at 8 kHz is converted once at the edge, never inside the graph.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from voiceflow.frames import FRAME_BYTES, SAMPLE_RATE

Float32 = npt.NDArray[np.float32]
Int16 = npt.NDArray[np.int16]


def pcm_to_float(pcm: bytes) -> Float32:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: Float32) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0) * 32767.0
    return clipped.astype("<i2").tobytes()


class Resampler:
    """Streaming PCM16 resampler that keeps filter state between chunks of one stream."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
            if in_rate != out_rate
            else None
        )

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return bytes(self._stream.resample_chunk(samples, last=last).tobytes())


def resample(pcm: bytes, in_rate: int, out_rate: int = SAMPLE_RATE) -> bytes:
    """Resample a whole clip in one go."""
    return Resampler(in_rate, out_rate).process(pcm, last=True)


def split_frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """Cut PCM into frames; the last one is zero-padded to full length."""
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes]
        yield chunk if len(chunk) == frame_bytes else chunk + b"\0" * (frame_bytes - len(chunk))


def read_wav(path: str | Path, rate: int = SAMPLE_RATE) -> bytes:
    """A WAV file as PCM16 mono at ``rate`` (mixing channels down, resampling if needed)."""
    with wave.open(str(path), "rb") as wav:
        width, channels, in_rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM WAV is supported, this one has {8 * width}-bit samples")
    samples = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    return resample(samples.tobytes(), in_rate, rate)


def write_wav(path: str | Path, pcm: bytes, rate: int = SAMPLE_RATE, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
