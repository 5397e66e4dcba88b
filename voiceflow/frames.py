"""The typed frames that flow through a session.

Audio inside the runtime is always PCM16 little-endian mono at :data:`SAMPLE_RATE` in 20 ms frames;
transports and providers convert at the edges. Keeping one format inside means no stage ever
has to ask what it was given, and the per-frame path stays a handful of attribute reads.

Every frame carries ``t``: a time on the session's :class:`~voiceflow.clock.Clock`. For caller
audio it is when the first sample was captured; for agent audio, when it was (or will be) played.
The per-turn timeline is built from these stamps, so latency is measured on the listener's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

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
    """What the caller said, as far as the STT knows now. Interims may be revised; a final is not.

    Every ``finalize()`` the runtime sends must be answered by exactly one final with
    ``finalized=True`` (empty text if nothing was said), within the entry's ``first_byte``
    deadline. Recognisers that also send finals of their own accord (per phrase, see
    :attr:`voiceflow.providers.STTStream.spontaneous_finals`) send those with ``finalized=False``.
    """

    text: str
    is_final: bool
    t: float
    """Session-clock time the transcript was produced."""
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    finalized: bool = False
    """This final answers the latest ``finalize()``: everything sent before it is now in finals."""
    speech_final: bool = False
    """The recogniser's own judgement that an utterance ended here (Deepgram's ``speech_final``
    or ``UtteranceEnd``): a hint for the turn manager, never a turn end on its own."""
    end: float | None = None
    """Audio time just after the last audio this transcript covers, when the recogniser knows it:
    a late final of an earlier utterance can then never be taken for part of the current one."""


@dataclass(slots=True, frozen=True)
class TextChunk:
    """A piece of agent text: LLM tokens on the way in, whole clauses on the way to TTS."""

    text: str
    t: float = 0.0


@dataclass(slots=True, frozen=True)
class TextMark:
    """Alignment of speech to text: by ``at`` seconds into a clause's audio, its first ``chars``
    characters have been spoken."""

    chars: int
    at: float


@dataclass(slots=True, frozen=True)
class TTSAudio:
    """Synthesised audio for part of one clause, at the provider's own sample rate.

    ``pcm`` is PCM16 mono; the runtime resamples it to :data:`SAMPLE_RATE`. Providers may split a
    sample across chunks' boundaries only if they carry the odd byte themselves: chunks must hold
    whole samples.

    ``marks`` is the voice's own alignment, when it reports one (ElevenLabs does, per character):
    with it, a reply cut off by barge-in keeps in the context exactly the words that were played;
    without it the runtime estimates them in proportion to the audio played.
    """

    pcm: bytes
    sample_rate: int
    marks: tuple[TextMark, ...] = ()
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    """``"mulaw"``: ``pcm`` holds G.711 μ-law bytes, one a sample, at 8 kHz (what a voice asked
    for a phone's wire format produces; see :meth:`~voiceflow.providers.TTSProvider.synthesize_for`)."""


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True, frozen=True)
class ToolSpec:
    """A tool as the LLM is offered it: a name, what it is for, and its arguments' JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True, frozen=True)
class ToolCall:
    """The LLM asks for a tool to be run. ``arguments`` is the JSON text exactly as the model
    wrote it: models do write invalid JSON, and the tool runner answers that like any other
    error, back to the model."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Message:
    """One entry of the conversation context sent to the LLM.

    An assistant message may carry ``tool_calls``; each is answered by a ``tool`` message with
    the same ``tool_call_id`` (the shape every chat API with function calling uses).
    """

    role: Role
    content: str
    interrupted: bool = field(default=False, compare=False)
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def without_tools(messages: Sequence[Message]) -> list[Message]:
    """``messages`` for a model that cannot call tools (a fallback LLM): each tool call and its
    result become a short system note, so the model still knows what was looked up."""
    plain: list[Message] = []
    for message in messages:
        if message.role == "tool":
            plain.append(Message("system", f"Tool result: {message.content}"))
            continue
        if message.tool_calls:
            if message.content.strip():
                plain.append(Message("assistant", message.content, message.interrupted))
            calls = "; ".join(f"{call.name}({call.arguments})" for call in message.tool_calls)
            plain.append(Message("system", f"The assistant called: {calls}"))
            continue
        plain.append(message)
    return plain
