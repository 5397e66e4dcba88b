"""The voice of :mod:`voiceflow.testing.fake_elevenlabs`: a tone per character, with alignment
that agrees with it exactly.

Every character of the *normalised* text (what a real voice would say: digits spelt out, ``&``
as "and", lower case) takes ``ms_per_char`` milliseconds of audio: a short tone for letters and
digits, silence for spaces and punctuation. So a test knows, from the audio's length alone, which
characters had been spoken at any moment, and can check a provider's alignment against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from voiceflow.g711 import mulaw_encode

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_WORDS = {"&": "and", "%": " percent", "+": " plus", "@": " at"}


def normalise(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text as spoken, and for each original character its span in it (never empty)."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    for i, ch in enumerate(text):
        if ch.isdigit() and ch in "0123456789":
            said = (" " if i and text[i - 1].isdigit() else "") + _DIGITS[int(ch)]
        else:
            said = _WORDS.get(ch, ch.lower())
        out.append(said)
        spans.append((length, length + len(said)))
        length += len(said)
    return "".join(out), spans


@dataclass(frozen=True, slots=True)
class Piece:
    """One audio message's worth of a segment: its PCM and the characters starting in it."""

    pcm: bytes
    alignment: dict[str, list[Any]] | None
    normalized_alignment: dict[str, list[Any]] | None


class Speech:
    """One generated segment of text: its audio and its character timings, in milliseconds from
    the segment's first sample."""

    def __init__(self, text: str, *, rate: int, ms_per_char: int, mulaw: bool = False) -> None:
        self.text = text
        self.rate = rate
        self.mulaw = mulaw
        self.sample_bytes = 1 if mulaw else 2
        self.ms_per_char = ms_per_char
        self.normalized, self._spans = normalise(text)
        self._samples_per_char = rate * ms_per_char // 1000

    @property
    def duration_ms(self) -> int:
        return len(self.normalized) * self.ms_per_char

    def pcm(self) -> bytes:
        n = self._samples_per_char
        t = np.arange(n, dtype=np.float32) / self.rate
        fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / max(1, n // 12))
        parts = []
        for ch in self.normalized:
            if ch.isalnum():
                freq = 180.0 + (ord(ch) % 26) * 15.0
                parts.append(0.3 * np.sin(2 * np.pi * freq * t) * fade)
            else:
                parts.append(np.zeros(n, dtype=np.float32))
        if not parts:
            return b""
        pcm = (np.concatenate(parts) * 32767).astype("<i2").tobytes()
        return mulaw_encode(pcm) if self.mulaw else pcm

    def pieces(self, chunk_ms: int, *, sync_alignment: bool) -> list[Piece]:
        """The segment cut into audio messages of ``chunk_ms``.

        With ``sync_alignment`` each message carries the characters that start in its own audio,
        timed from that message's first sample; without, the first message carries the whole
        segment's alignment, timed from the segment's first sample, and the others none.
        """
        pcm = self.pcm()
        width = self.sample_bytes
        chunk_bytes = max(width, self.rate * chunk_ms // 1000 * width)
        pieces: list[Piece] = []
        original: dict[str, list[Any]] | None
        normal: dict[str, list[Any]] | None
        for offset in range(0, len(pcm), chunk_bytes):
            start_ms = offset // width * 1000 / self.rate
            end_ms = min(len(pcm), offset + chunk_bytes) // width * 1000 / self.rate
            if sync_alignment:
                original, normal = self._alignment(start_ms, end_ms, start_ms)
            elif offset == 0:
                original, normal = self._alignment(0, float("inf"), 0)
            else:
                original = normal = None
            pieces.append(Piece(pcm[offset : offset + chunk_bytes], original, normal))
        return pieces

    def _alignment(self, start_ms: float, end_ms: float, origin_ms: float) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        ms = self.ms_per_char
        original: dict[str, list[Any]] = {"chars": [], "charStartTimesMs": [], "charDurationsMs": []}
        for ch, (a, b) in zip(self.text, self._spans, strict=True):
            if start_ms <= a * ms < end_ms:
                original["chars"].append(ch)
                original["charStartTimesMs"].append(round(a * ms - origin_ms))
                original["charDurationsMs"].append((b - a) * ms)
        normal: dict[str, list[Any]] = {"chars": [], "charStartTimesMs": [], "charDurationsMs": []}
        for i, ch in enumerate(self.normalized):
            if start_ms <= i * ms < end_ms:
                normal["chars"].append(ch)
                normal["charStartTimesMs"].append(round(i * ms - origin_ms))
                normal["charDurationsMs"].append(ms)
        return original, normal
