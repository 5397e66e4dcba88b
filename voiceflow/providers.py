"""The provider API: what a plugin implements to add a VAD, STT, LLM, TTS or transport.

Built-in providers (under ``plugins/``) use nothing but this module, :mod:`voiceflow.frames`,
:mod:`voiceflow.config.base`, :mod:`voiceflow.compute`, :mod:`voiceflow.models`,
:mod:`voiceflow.audio`, :mod:`voiceflow.clock` and :mod:`voiceflow.plugins.hookspecs`; a
third-party package can do everything they do.

Conventions every provider follows:

* **One class per provider, one instance per distinct config per process.** ``prepare()`` loads
  weights or opens pools once; per-call state lives in the small stream objects the provider hands
  out (``VADStream``, ``STTStream``), so many sessions share one loaded model.
* **Streams, not batches.** LLM text and TTS audio are async iterators; the runtime starts
  downstream work on the first item.
* **Prompt cancellation.** The runtime cancels a reply by cancelling the task that iterates the
  stream (barge-in) or by closing the iterator. Providers must stop work promptly when that happens:
  use :func:`voiceflow.compute.iterate_in_thread` for blocking generators, and close sockets in
  ``finally``.
* **No timing code.** Time-to-first-byte, timeouts and fallback are measured and enforced by the
  runtime around every call, the same way for every provider.
* **Errors** are raised as :class:`ProviderError` (or subclasses) with a message a caller's operator
  can act on; anything else is wrapped by the runtime.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from voiceflow.config.base import ProviderConfig
from voiceflow.frames import (
    AudioFrame,
    Message,
    ToolCall,
    ToolSpec,
    Transcript,
    TTSAudio,
    VADEvent,
    VADKind,
    without_tools,
)


class ProviderKind(str, Enum):
    VAD = "vad"
    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    TURN = "turn_detection"
    TRANSPORT = "transport"


class ProviderError(Exception):
    """A provider failed in a way the runtime may recover from by falling back to the next one."""


class ProviderUnavailable(ProviderError):
    """The provider cannot work at all here (missing package, model file, key or server)."""


class ProviderTimeout(ProviderError):
    """A provider call did not answer within its deadline (the runtime raises it, never a plugin)."""


C = TypeVar("C", bound=ProviderConfig)


class Provider(ABC, Generic[C]):
    """Base of every provider. Subclasses set ``kind``, ``name`` and ``config_model``.

    ``name`` is what an agent file writes as ``provider:``; ``config_model`` is the pydantic model
    of that YAML block, and becomes part of the agent schema when the plugin is installed.
    """

    kind: ClassVar[ProviderKind]
    name: ClassVar[str]
    config_model: ClassVar[type[ProviderConfig]]

    def __init__(self, config: C) -> None:
        self.config = config

    async def prepare(self) -> None:
        """Load models or open connection pools; called once before the first session uses it."""

    async def aclose(self) -> None:
        """Release what ``prepare`` acquired."""

    @classmethod
    def summary(cls) -> str:
        """One line for ``voiceflow plugins``: the first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


# --- VAD -------------------------------------------------------------------------------------


class VADStream(ABC):
    """Per-call voice-activity state. The session awaits :meth:`aprocess` for every 20 ms frame
    on the event loop that carries every call; by default it runs ``process`` there, so that
    must be cheap (well under a millisecond). A heavier detector overrides :meth:`aprocess`."""

    @abstractmethod
    def process(self, frame: AudioFrame) -> VADEvent | None:
        """Feed one frame; return an edge when speech starts or ends."""

    async def aprocess(self, frame: AudioFrame) -> VADEvent | None:
        """What the session calls: :meth:`process`, unless the detector can do better.

        A detector whose model costs a noticeable share of a millisecond overrides this to run
        the model off the event loop (a worker thread, gathering the windows of many calls into
        one hand-off: see the Silero plugin), with the same results as :meth:`process`. Frames of
        one call are awaited one at a time, in order. If the call is cancelled meanwhile, the
        stream is dropped; it need not stay usable.
        """
        return self.process(frame)

    @property
    @abstractmethod
    def speaking(self) -> bool:
        """Whether the caller is currently in a speech segment."""

    @property
    def voiced_until(self) -> float:
        """Audio time just after the last frame judged voiced (``-inf`` before any).

        Lets the turn manager tell, the moment a barge-in timer fires, whether the caller is still
        talking or already stopped (the detector's end-of-speech confirmation lags by its stop
        window). The default is a coarse answer from :attr:`speaking`; precise detectors override.
        """
        return float("inf") if self.speaking else float("-inf")

    def finish(self, t: float) -> VADEvent | None:
        """The caller's audio ended at audio time ``t``: close an open speech segment.

        The end of input is an endpoint: a recording cut mid-word, or a caller whose line drops
        while talking, must still end the turn rather than leave it open forever. The default
        ends the segment at :attr:`voiced_until` (or ``t``); detectors rarely need to override it.
        """
        if not self.speaking:
            return None
        return VADEvent(VADKind.SPEECH_END, min(self.voiced_until, t), t)


class VADProvider(Provider[C]):
    kind = ProviderKind.VAD

    @abstractmethod
    def create_stream(self) -> VADStream: ...


# --- STT -------------------------------------------------------------------------------------


class STTStream(ABC):
    """One call's recognition stream. Audio goes in with ``send``; transcripts come out of
    ``transcripts()``. ``finalize`` asks for the final transcript of the audio so far as soon as
    possible: the turn manager calls it when the caller stops speaking, and each call must be
    answered by one final with ``finalized=True`` (see :class:`~voiceflow.frames.Transcript`).

    Interim transcripts (``is_final=False``) may come at any time. ``send`` is called from a
    sender task fed by a bounded queue, never from the caller-audio path, so a slow socket delays
    only the recogniser.
    """

    spontaneous_finals: ClassVar[bool] = False
    """False for batch recognisers (Whisper): every final answers the latest ``finalize()``. True
    for streaming recognisers that also send finals of their own accord, per phrase (Deepgram):
    only a final with ``finalized=True`` answers ``finalize()``; the others are parts of the
    utterance the turn manager collects."""

    @abstractmethod
    async def send(self, frame: AudioFrame) -> None: ...

    def speech_started(self, t: float) -> None:  # noqa: B027 - optional hook
        """The VAD heard speech start at audio time ``t`` (batch recognisers use it to trim)."""

    @abstractmethod
    async def finalize(self) -> None: ...

    @abstractmethod
    def transcripts(self) -> AsyncIterator[Transcript]: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Close sockets or buffers."""


class STTProvider(Provider[C]):
    kind = ProviderKind.STT

    @abstractmethod
    async def open_stream(self) -> STTStream: ...


# --- LLM -------------------------------------------------------------------------------------


class LLMProvider(Provider[C]):
    kind = ProviderKind.LLM

    @abstractmethod
    def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Stream the assistant's reply to ``messages`` as text deltas."""

    def stream_with_tools(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[str | ToolCall]:
        """Like :meth:`stream`, with ``tools`` the model may call.

        A provider that supports function calling overrides this: text deltas as they come, then
        each complete :class:`~voiceflow.frames.ToolCall` the model asked for (the runtime runs
        them and asks again with the results). ``messages`` may hold earlier tool calls and
        results. The default serves a model without tools: it answers in text, the history's
        tool entries told to it as notes, so it can still be a fallback of an agent with tools.
        """
        return self.stream(without_tools(messages))

    @classmethod
    def calls_tools(cls) -> bool:
        """Whether this provider can call tools (it overrides :meth:`stream_with_tools`)."""
        return cls.stream_with_tools is not LLMProvider.stream_with_tools

    async def warm(self, messages: Sequence[Message]) -> None:  # noqa: B027 - optional hook
        """A call is starting with these messages (the system prompt): get ready for them.

        Called while the greeting plays, so a local model can read the system prompt into its
        cache before the caller's first question instead of after it. Optional.
        """


# --- TTS -------------------------------------------------------------------------------------


class TTSProvider(Provider[C]):
    kind = ProviderKind.TTS

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        """Stream audio for one clause of text, first chunk as early as possible."""

    def synthesize_for(self, text: str, wire_format: str) -> AsyncIterator[TTSAudio]:
        """Like :meth:`synthesize`, for a call whose transport carries ``wire_format``
        (:attr:`CallTransport.wire_format`, e.g. ``"mulaw/8000"``).

        A voice that can produce that format itself overrides this and yields it
        (``TTSAudio(..., encoding="mulaw", sample_rate=8000)``): the audio then reaches the
        caller without being decoded, resampled and encoded again. The default gives PCM, which
        the transport converts once.
        """
        return self.synthesize(text)


# --- end of turn -----------------------------------------------------------------------------


class TurnDetector(Provider[C]):
    """Judges whether the caller has finished their turn (a semantic end-of-turn model).

    Asked only at pause candidates (the VAD heard speech end), while the silence window runs, so
    it costs nothing while the caller speaks and hides inside the pause. Its verdict moves the
    endpoint: "finished" may end the turn sooner than the silence rule alone, "not finished"
    waits longer (both bounded by ``turn_taking.endpointing``). A detector that fails or is slow
    is ignored for that pause: the silence rule decides.
    """

    kind = ProviderKind.TURN
    max_audio_seconds: ClassVar[float] = 8.0
    """The most caller audio the detector looks at (the runtime keeps this much per call)."""

    @abstractmethod
    async def turn_complete(self, audio: bytes, transcript: str) -> float:
        """The probability (0–1) that the turn is complete.

        ``audio`` is the caller's most recent audio, PCM16 at 16 kHz, up to
        :attr:`max_audio_seconds`, ending where the pause began (the caller's own pauses within
        it included); ``transcript`` is what was recognised of the turn so far (may be empty:
        audio-only models ignore it). Run heavy work off the event loop
        (:func:`voiceflow.compute.run_in_thread`).
        """


# --- transports ------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class OutFrame:
    """Agent audio handed to a transport. ``mark`` is opaque to the transport: it reports it back
    through ``on_played`` once the listener has heard the frame (or would have: the file
    transport's playout clock, Twilio's echoed marks)."""

    frame: AudioFrame
    mark: object
    wire: bytes | None = None
    """The same 20 ms already in the transport's :attr:`CallTransport.wire_format`, when the
    voice produced that format itself (μ-law 8 kHz for a phone): sent as is, never transcoded."""


PlayedCallback = Callable[[object, float], None]
KeypadCallback = Callable[[str, float], None]


class CallTransport(ABC):
    """One call's audio edge: caller frames in, agent frames out, playback progress back."""

    call_id: str = ""
    clock: str = "real"
    """Which clock suits this call when the agent says ``session.clock: auto``: live calls need
    ``"real"``; a file can run on ``"virtual"`` time, faster than real time."""
    wire_format: str | None = None
    """The audio format on this call's wire, when it is not the internal PCM16 16 kHz:
    ``"mulaw/8000"`` for phone lines. Voices that can produce it are asked to, and their audio
    then reaches :meth:`play` in :attr:`OutFrame.wire` untouched."""
    caller_audio_end_is_hangup: bool = True
    """False for sources whose audio simply runs out (a file): the call then ends once the agent
    is idle, instead of the moment the audio stops."""

    @abstractmethod
    def caller_audio(self) -> AsyncIterator[AudioFrame]:
        """Caller audio, 20 ms frames at the internal rate, stamped with capture time.
        Ends when the caller hangs up."""

    @abstractmethod
    async def play(self, out: OutFrame) -> None:
        """Queue agent audio. Waits when the transport's buffer is full (back-pressure)."""

    @abstractmethod
    def flush(self) -> None:
        """Drop all agent audio not yet heard (barge-in). Must be immediate."""

    def pause(self) -> bool:
        """Stop playing agent audio at once, keeping what is not yet heard: the caller may be
        interrupting. :meth:`resume` plays on from exactly there; :meth:`flush` drops it (and
        ends the pause). Returns False if this transport cannot pause (the default): the agent
        then talks on until the barge-in decision."""
        return False

    def resume(self) -> None:  # noqa: B027 - optional hook
        """Play on after :meth:`pause` (it was not an interruption after all)."""

    @abstractmethod
    def on_played(self, callback: PlayedCallback) -> None:
        """Register the callback for playback progress: ``callback(mark, t_heard)``."""

    def on_dtmf(self, callback: KeypadCallback) -> None:  # noqa: B027 - optional hook
        """Register ``callback(digit, t)`` for every keypad press (``0``–``9``, ``*``, ``#``,
        ``A``–``D``; ``t`` on the call's clock). Transports without a keypad (a file, a browser)
        never call it. Digits may be a PIN: transports never log them."""

    def send_dtmf(self, keys: str) -> bool:
        """Press keypad keys on the caller's side (``0``–``9``, ``*``, ``#``, ``A``–``D``), out of
        band, if this transport has a way to: the agent answering an IVR menu. Returns False
        (the default) if it has none; the agent then plays the keys as in-band tones (ITU-T Q.23
        pairs, :mod:`voiceflow.dtmf`) through :meth:`play`, which every line carries. Twilio Media
        Streams and the browser page have no out-of-band path; the WebSocket audio API has one
        for clients that ask for it. Keys are not logged (they may be a PIN)."""
        return False

    def notify(self, event: str, **data: Any) -> None:  # noqa: B027 - optional hook
        """Session events a transport may care about (``greeting_done``, ``hangup``)."""

    async def run(self) -> None:  # noqa: B027 - optional hook
        """Background work for the call (playout pacing, socket pumps). Cancelled at hang-up."""


SessionRunner = Callable[[CallTransport], Awaitable[None]]


class TransportProvider(Provider[C]):
    """Accepts calls and runs a session for each. A file transport serves exactly one call; a
    web or phone transport runs a server and serves calls until cancelled (drain)."""

    kind = ProviderKind.TRANSPORT

    @abstractmethod
    async def serve(self, run_session: SessionRunner) -> None: ...
