"""The typed frames that flow through a session.

Audio inside the runtime is always PCM16 little-endian mono at :data:`SAMPLE_RATE` in 20 ms frames;
transports and providers convert at the edges. Keeping one format inside means no stage ever
has to ask what it was given, and the per-frame path stays a handful of attribute reads.

Every frame carries ``t``: a time on the session's :class:`~voiceflow.clock.Clock`. For caller
audio it is when the first sample was captured; for agent audio, when it was (or will be) played.
The per-turn timeline is built from these stamps, so latency is measured on the listener's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

SAMPLE_RATE = 16_000
"""The one internal sample rate, in Hz."""

FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
FRAME_SECONDS = FRAME_MS / 1000


@dataclass(slots=True, frozen=True)
class AudioFrame:
    """20 ms of PCM16 mono audio at :data:`SAMPLE_RATE` (the last frame of a clip may be shorter)."""

    pcm: bytes
    t: float = 0.0

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration(self) -> float:
        return len(self.pcm) / (2 * SAMPLE_RATE)


class VADKind(str, Enum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(slots=True, frozen=True)
class VADEvent:
    """A voice-activity edge.

    ``t`` is the audio time of the edge itself (first voiced sample for a start, just after the
    last voiced sample for an end), not the moment the detector became sure of it: the gap between
    the two is the detector's own latency and shows up in the timeline.
    """

    kind: VADKind
    t: float
    detected_at: float


@dataclass(slots=True, frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(slots=True, frozen=True)
class Transcript:
    """What the caller said, as far as the STT knows now. Interims may be revised; a final is not."""

    text: str
    is_final: bool
    t: float
    confidence: float | None = None
    words: tuple[Word, ...] = ()


@dataclass(slots=True, frozen=True)
class TextChunk:
    """A piece of agent text: LLM tokens on the way in, whole clauses on the way to TTS."""

    text: str
    t: float = 0.0


@dataclass(slots=True, frozen=True)
class TTSAudio:
    """Synthesised audio for part of one clause, at the provider's own sample rate.

    ``pcm`` is PCM16 mono; the runtime resamples it to :data:`SAMPLE_RATE`. Providers may split a
    sample across chunks' boundaries only if they carry the odd byte themselves: chunks must hold
    whole samples.
    """

    pcm: bytes
    sample_rate: int


Role = Literal["system", "user", "assistant"]


@dataclass(slots=True)
class Message:
    """One entry of the conversation context sent to the LLM."""

    role: Role
    content: str
    interrupted: bool = field(default=False, compare=False)

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}
