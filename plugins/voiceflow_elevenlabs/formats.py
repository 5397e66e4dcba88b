"""The raw output formats voiceflow asks ElevenLabs for, and what their bytes mean.

``pcm_16000`` is voiceflow's own rate, so nothing is resampled; ``ulaw_8000`` is a phone line's
own format (G.711 μ-law, one byte a sample), asked for on calls whose transport carries it, so
the audio reaches the caller untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voiceflow.frames import TextMark, TTSAudio


@dataclass(frozen=True, slots=True)
class OutputFormat:
    name: str
    """ElevenLabs' ``output_format``."""
    rate: int
    width: int
    """Bytes a sample."""
    encoding: Literal["pcm16", "mulaw"]

    def audio(self, data: bytes, marks: tuple[TextMark, ...] = ()) -> TTSAudio:
        return TTSAudio(data, self.rate, marks, encoding=self.encoding)

    def seconds(self, size: int) -> float:
        return size / (self.width * self.rate)


PCM_16000 = OutputFormat("pcm_16000", 16_000, 2, "pcm16")
ULAW_8000 = OutputFormat("ulaw_8000", 8_000, 1, "mulaw")


class WholeSamples:
    """Carries a partial sample into the next chunk (chunks may split a 16-bit sample)."""

    def __init__(self, audio: OutputFormat) -> None:
        self.width = audio.width
        self._carry = b""

    def take(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        whole = len(data) - len(data) % self.width
        self._carry = data[whole:]
        return data[:whole]

    @property
    def ragged(self) -> bool:
        """Bytes left over at the end: the stream ended mid-sample (it is corrupt)."""
        return bool(self._carry)
