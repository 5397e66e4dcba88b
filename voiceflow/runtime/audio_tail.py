"""The caller's most recent audio, kept for end-of-turn models.

A model judging a pause needs the seconds of speech before it; the caller's frames are passed on
to the VAD and the STT and otherwise dropped, so this keeps a bounded copy. Appending is one
``bytearray`` extend per frame; trimming happens once the buffer holds twice its capacity, so its
cost is amortised to almost nothing on the hot path.
"""

from __future__ import annotations

from voiceflow.frames import SAMPLE_RATE, AudioFrame


class AudioTail:
    def __init__(self, seconds: float) -> None:
        self.capacity = int(seconds * SAMPLE_RATE) * 2
        self._pcm = bytearray()
        self._end = 0.0
        """Audio time just after the last sample kept."""

    def push(self, frame: AudioFrame) -> None:
        self._pcm += frame.pcm
        self._end = frame.t + frame.duration
        if len(self._pcm) > 2 * self.capacity:
            del self._pcm[: len(self._pcm) - self.capacity]

    def until(self, t: float) -> bytes:
        """The last ``seconds`` of audio before audio time ``t`` (less if the call is younger)."""
        cut = len(self._pcm) - 2 * max(0, round((self._end - t) * SAMPLE_RATE))
        cut = max(0, min(len(self._pcm), cut))
        return bytes(self._pcm[max(0, cut - self.capacity) : cut])
