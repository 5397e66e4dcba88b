"""Cutting a voice's audio into the 20 ms frames a transport plays."""

from __future__ import annotations

import numpy as np

from voiceflow.frames import FRAME_BYTES, TTSAudio
from voiceflow.g711 import MULAW_FRAME_BYTES, MULAW_RATE, MULAW_SILENCE, mulaw_decode
from voiceflow.low_delay_resampler import LowDelayResampler

Framed = tuple[bytes, bytes | None]
"""One 20 ms frame: PCM16 at the internal rate, and the same audio on the wire if the voice
produced the wire format itself."""


class Framer:
    """TTS chunks at any rate and size → 20 ms frames at the internal rate.

    μ-law chunks (a voice speaking a phone's own format) are cut into 20 ms wire frames that go
    to the transport untouched; the internal PCM beside each (for the call recording and the
    playback accounting) is decoded and doubled to 16 kHz, exactly one frame per wire frame.
    """

    def __init__(self) -> None:
        self._resampler: LowDelayResampler | None = None
        self._pending = bytearray()
        self._mulaw = bytearray()
        self.seconds = 0.0
        """Audio received so far, in seconds."""

    def push(self, chunk: TTSAudio) -> list[Framed]:
        if chunk.encoding == "mulaw":
            self.seconds += len(chunk.pcm) / MULAW_RATE
            self._mulaw += chunk.pcm
            return self._take_mulaw()
        self.seconds += len(chunk.pcm) / (2 * chunk.sample_rate)
        if self._resampler is None or self._resampler.in_rate != chunk.sample_rate:
            tail = self._resampler.process(b"", last=True) if self._resampler else b""
            self._pending += tail
            self._resampler = LowDelayResampler(chunk.sample_rate)
        self._pending += self._resampler.process(chunk.pcm)
        return self._take()

    def finish(self) -> list[Framed]:
        if self._mulaw:
            self._mulaw += bytes([MULAW_SILENCE]) * (MULAW_FRAME_BYTES - len(self._mulaw) % MULAW_FRAME_BYTES)
            return self._take_mulaw()
        if self._resampler is not None:
            self._pending += self._resampler.process(b"", last=True)
        frames = self._take()
        if self._pending:
            frames.append((bytes(self._pending) + b"\0" * (FRAME_BYTES - len(self._pending)), None))
            self._pending.clear()
        return frames

    def _take(self) -> list[Framed]:
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        frames: list[Framed] = [(bytes(self._pending[i : i + FRAME_BYTES]), None) for i in range(0, whole, FRAME_BYTES)]
        del self._pending[:whole]
        return frames

    def _take_mulaw(self) -> list[Framed]:
        whole = len(self._mulaw) - len(self._mulaw) % MULAW_FRAME_BYTES
        frames: list[Framed] = []
        for i in range(0, whole, MULAW_FRAME_BYTES):
            wire = bytes(self._mulaw[i : i + MULAW_FRAME_BYTES])
            frames.append((_doubled(mulaw_decode(wire)), wire))
        del self._mulaw[:whole]
        return frames


def _doubled(pcm: bytes) -> bytes:
    """8 kHz PCM16 → 16 kHz by linear interpolation: exact length, no state between frames
    (this copy is for accounting and recordings; the caller hears the wire frames)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    following = np.append(samples[1:], samples[-1:])
    doubled = np.empty(2 * len(samples), dtype=np.float32)
    doubled[0::2], doubled[1::2] = samples, (samples + following) / 2
    return doubled.astype("<i2").tobytes()
