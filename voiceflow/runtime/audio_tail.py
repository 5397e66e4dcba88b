"""The caller's most recent audio, kept for end-of-turn models and the music detector.

A model judging a pause needs the seconds of speech before it; the caller's frames are passed on
to the VAD and the STT and otherwise dropped, so this keeps a bounded copy, in a ring allocated
once per call. (It was a ``bytearray`` extended every frame and cut when it doubled: the same
cost per frame, but a half-megabyte block reallocated all through a call, in every call at once,
fragments the malloc heap. A serving process grew ~650 KB per call it had served, none of it
Python objects and none of it given back by ``malloc_trim``.)
"""

from __future__ import annotations

from voiceflow.frames import SAMPLE_RATE, AudioFrame

MARGIN_SECONDS = 2.0
"""Kept beyond ``seconds``: a pause is judged a little after it began, on the audio before it."""


class AudioTail:
    def __init__(self, seconds: float) -> None:
        self.capacity = int(seconds * SAMPLE_RATE) * 2
        """Bytes :meth:`until` returns at most."""
        self._ring = bytearray(self.capacity + int(MARGIN_SECONDS * SAMPLE_RATE) * 2)
        self._written = 0
        """Bytes pushed since the call began (the ring holds the last ``len(_ring)`` of them)."""
        self._end = 0.0
        """Audio time just after the last sample kept."""

    def push(self, frame: AudioFrame) -> None:
        pcm = frame.pcm
        size = len(self._ring)
        if size == 0:
            return  # cleared
        if len(pcm) > size:
            self._written += len(pcm) - size
            pcm = pcm[-size:]
        at = self._written % size
        first = min(len(pcm), size - at)
        self._ring[at : at + first] = pcm[:first]
        if first < len(pcm):
            self._ring[: len(pcm) - first] = pcm[first:]
        self._written += len(pcm)
        self._end = frame.t + frame.duration

    def clear(self) -> None:
        """The call is over: give the ring back now. The call's objects reference each other,
        so they wait for the collector's full pass; the audio need not wait with them."""
        self._ring = bytearray()
        self._written = 0

    def until(self, t: float) -> bytes:
        """The last ``seconds`` of audio before audio time ``t`` (less if the call is younger)."""
        oldest = max(0, self._written - len(self._ring))
        cut = self._written - 2 * max(0, round((self._end - t) * SAMPLE_RATE))
        cut = max(oldest, min(self._written, cut))
        return self._span(max(oldest, cut - self.capacity), cut)

    def _span(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of everything pushed (both within the ring)."""
        size = len(self._ring)
        if end - start == 0 or size == 0:
            return b""
        a, b = start % size, end % size
        if a < b:
            return bytes(self._ring[a:b])
        return bytes(self._ring[a:]) + bytes(self._ring[:b])
