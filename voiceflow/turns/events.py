"""What the turn manager reacts to. Everything reaches it through one inbox, in order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from voiceflow.frames import Transcript
from voiceflow.runtime.reply import Reply


class State(str, Enum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    ENDPOINTING = "endpointing"
    THINKING = "thinking"
    SPEAKING = "speaking"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    t: float


@dataclass(frozen=True, slots=True)
class VoiceOnset:
    """The detector heard the caller's voice begin at audio time ``t``, and has not yet called
    it speech: a :class:`SpeechStarted` follows if it lasts the detector's start window."""

    t: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    t: float
    detected_at: float


@dataclass(frozen=True, slots=True)
class TranscriptReceived:
    transcript: Transcript
    answers: int | None = None
    """The finalize request this final answers (see :mod:`voiceflow.runtime.recognizer`)."""


class Timer(str, Enum):
    """The turn manager's timers, one of each at a time."""

    ENDPOINT = "endpoint"
    MAX_WAIT = "max_wait"
    BARGE_IN = "barge_in"
    SILENCE = "silence"
    IDLE_END = "idle_end"
    MAX_CALL = "max_call"
    KEYPAD = "keypad"
    MUSIC = "music"
    """Judge the caller's turn in progress for music (a hold line to say when it starts)."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: Timer
    generation: int


@dataclass(frozen=True, slots=True)
class ReplyHeard:
    """The caller heard the first audio of ``reply``."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ReplyEnded:
    reply: Reply
    error: BaseException | None
    cancelled: bool


@dataclass(frozen=True, slots=True)
class CallerAudioEnded:
    """The transport has no more caller audio (hang-up, or the end of a file)."""


@dataclass(frozen=True, slots=True)
class RecognitionFailed:
    """The speech recogniser failed; audio since its last final may never get one."""

    provider: str
    error: str


@dataclass(frozen=True, slots=True)
class StageDown:
    """A stage the call cannot go on without is gone (every VAD of the chain failed)."""

    stage: str
    error: str


@dataclass(frozen=True, slots=True)
class PauseJudged:
    """The end-of-turn model's verdict on pause ``serial``: (probability complete, by whom), or
    ``None`` if no model answered."""

    serial: int
    verdict: tuple[float, str] | None


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """The caller pressed a keypad key (DTMF) at call-clock time ``t``."""

    key: str
    t: float


@dataclass(frozen=True, slots=True)
class StateRequested:
    """Something in the call (a tool, for now) asks for another conversation state, which
    switches the turn-taking overrides of ``turn_taking.states`` (``"default"``: none)."""

    state: str
    because: str


@dataclass(frozen=True, slots=True)
class HangUpRequested:
    """Someone outside the call ends it now (Ctrl-C, SIGTERM, an operator)."""

    reason: str


Event = (
    SpeechStarted
    | VoiceOnset
    | SpeechEnded
    | TranscriptReceived
    | TimerFired
    | StateRequested
    | KeyPressed
    | PauseJudged
    | ReplyHeard
    | ReplyEnded
    | CallerAudioEnded
    | RecognitionFailed
    | StageDown
    | HangUpRequested
)


class Inbox(Protocol):
    """Where events are posted for the turn manager (a :class:`voiceflow.frame_queue.FrameQueue`
    in a call; anything with these two methods in a test). Posting after the call has ended
    raises ``ClosedResourceError``."""

    async def send(self, item: Event, /) -> None: ...

    def send_nowait(self, item: Event, /) -> None: ...
