"""Small, honest stand-ins for real providers, for tests of turn-taking and of plugins.

They are real providers (registered through the same hooks) whose behaviour is scripted: an
energy VAD, an STT that returns the next scripted line when finalized, an LLM that streams a
scripted reply word by word, and a TTS that speaks a tone whose length follows the text. Their
delays run on the session clock, so on a virtual clock a test exercises real timing in
milliseconds of wall time.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import anyio
import anyio.lowlevel
import numpy as np
from pydantic import Field

from voiceflow.clock import Clock, current_clock
from voiceflow.config.base import ProviderConfig
from voiceflow.frames import (
    SAMPLE_RATE,
    AudioFrame,
    Message,
    TextMark,
    ToolCall,
    ToolSpec,
    Transcript,
    TTSAudio,
    VADEvent,
    VADKind,
)
from voiceflow.g711 import MULAW_RATE, mulaw_encode
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import (
    LLMProvider,
    STTProvider,
    STTStream,
    TTSProvider,
    TurnDetector,
    VADProvider,
    VADStream,
)


class EnergyVADConfig(ProviderConfig):
    provider: Literal["energy"] = "energy"
    threshold_db: float = Field(-35.0, description="Frames louder than this (dBFS RMS) are speech.")
    start_secs: float = Field(0.06, ge=0, description="Speech this long starts a segment.")
    stop_secs: float = Field(0.2, ge=0, description="Silence this long ends a segment.")


class _EnergyStream(VADStream):
    def __init__(self, config: EnergyVADConfig) -> None:
        self._config = config
        self._speaking = False
        self._run_start: float | None = None
        self._last_voiced_end = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def voiced_until(self) -> float:
        return self._last_voiced_end if self._run_start is not None or self._speaking else float("-inf")

    def process(self, frame: AudioFrame) -> VADEvent | None:
        samples = np.frombuffer(frame.pcm, dtype="<i2").astype(np.float32) / 32768.0
        rms = float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0
        voiced = 20 * math.log10(rms + 1e-9) > self._config.threshold_db
        end = frame.t + frame.duration
        if voiced:
            self._last_voiced_end = end
            if self._run_start is None:
                self._run_start = frame.t
            if not self._speaking and end - self._run_start >= self._config.start_secs:
                self._speaking = True
                return VADEvent(VADKind.SPEECH_START, self._run_start, end)
            return None
        if not self._speaking:
            self._run_start = None
        elif end - self._last_voiced_end >= self._config.stop_secs:
            self._speaking = False
            self._run_start = None
            return VADEvent(VADKind.SPEECH_END, self._last_voiced_end, end)
        return None


class EnergyVAD(VADProvider[EnergyVADConfig]):
    """Energy-threshold VAD (deterministic; for tests on synthetic audio)."""

    name = "energy"
    config_model = EnergyVADConfig

    def create_stream(self) -> VADStream:
        return _EnergyStream(self.config)


class ScriptedSTTConfig(ProviderConfig):
    provider: Literal["scripted-stt"] = "scripted-stt"
    lines: list[str] = Field(default_factory=list, description="Finals to return, one per finalize().")
    confidences: list[float] = Field(
        default_factory=list, description="Confidence of each final, in order (none after the list ends)."
    )
    delay: float = Field(0.1, ge=0, description="Seconds from finalize() to the final transcript.")
    fail_on: list[int] = Field(default_factory=list, description="finalize() calls (from 0) that raise.")
    interims: list[str] = Field(
        default_factory=list,
        description="Interim transcripts, one per burst of loud audio it is sent (like a streaming "
        "recogniser hearing speech, whether or not the turn manager listens), in order.",
    )
    interim_after: float = Field(0.15, ge=0, le=10, description="Seconds of a burst before its interim.")


class _Script:
    """The lines and failures still to come. Shared by the streams of one provider instance, so
    a stream the runtime opens to replace a failed one carries on with the script."""

    def __init__(self, config: ScriptedSTTConfig) -> None:
        self.lines = list(config.lines)
        self.confidences = list(config.confidences)
        self.interims = list(config.interims)
        self.fail_on = set(config.fail_on)
        self.finalized = 0


class _QueuedTranscripts(STTStream):
    """A fake stream's transcripts: whatever it puts in ``_send``, until it is closed."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Transcript](64)

    async def transcripts(self) -> AsyncIterator[Transcript]:
        async with self._receive:
            async for transcript in self._receive:
                yield transcript

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


class _ScriptedSTTStream(_QueuedTranscripts):
    def __init__(self, config: ScriptedSTTConfig, script: _Script | None = None) -> None:
        super().__init__()
        self._script = script or _Script(config)
        self._delay = config.delay
        self._interim_after = config.interim_after
        self._burst: float | None = None
        self._burst_told = False
        self.frames = 0

    async def send(self, frame: AudioFrame) -> None:
        self.frames += 1
        if not self._script.interims:
            return
        loud = np.abs(np.frombuffer(frame.pcm, dtype="<i2")).mean() > LOUD
        if not loud:
            self._burst, self._burst_told = None, False
            return
        if self._burst is None:
            self._burst = frame.t
        if not self._burst_told and frame.t + frame.duration - self._burst >= self._interim_after:
            self._burst_told = True
            text = self._script.interims.pop(0)
            await self._send.send(Transcript(text, False, current_clock().now()))

    async def finalize(self) -> None:
        clock = current_clock()
        with clock.busy():
            await clock.sleep(self._delay)
        script = self._script
        script.finalized += 1
        if script.finalized - 1 in script.fail_on:
            raise RuntimeError("scripted recogniser failure")
        text = script.lines.pop(0) if script.lines else ""
        confidence = script.confidences.pop(0) if script.confidences else None
        await self._send.send(Transcript(text, True, clock.now(), confidence=confidence, finalized=True))



LOUD = 1000
"""Mean absolute sample level above which the scripted recogniser hears speech (speech_like is ~5000)."""


class ScriptedSTT(STTProvider[ScriptedSTTConfig]):
    """Returns scripted lines as finals (for turn-taking tests)."""

    name = "scripted-stt"
    config_model = ScriptedSTTConfig

    def __init__(self, config: ScriptedSTTConfig) -> None:
        super().__init__(config)
        self._script = _Script(config)

    async def open_stream(self) -> STTStream:
        return _ScriptedSTTStream(self.config, self._script)


class StreamingSTTConfig(ProviderConfig):
    provider: Literal["streaming-stt"] = "streaming-stt"
    utterances: list[list[str]] = Field(
        default_factory=list,
        description="Per utterance, its phrases: all but the last come as finals of their own "
        "accord, the last as the answer to finalize().",
    )
    phrase_gap: float = Field(0.05, ge=0, le=60, description="Seconds between phrase finals.")
    answer_delays: list[float] = Field(
        default_factory=list,
        description="Seconds from the last phrase to the answer, per utterance (default 0.1).",
    )


class _StreamingSTTStream(_QueuedTranscripts):
    """Like a streaming cloud recogniser: finals per phrase, then one that answers finalize()."""

    spontaneous_finals = True

    def __init__(self, config: StreamingSTTConfig) -> None:
        super().__init__()
        self._config = config
        self._utterance = 0
        self._last_end: float | None = None

    async def send(self, frame: AudioFrame) -> None:
        self._last_end = frame.t + frame.duration

    async def finalize(self) -> None:
        index = self._utterance
        self._utterance += 1
        phrases = self._config.utterances[index] if index < len(self._config.utterances) else [""]
        delays = self._config.answer_delays
        clock = current_clock()
        end = self._last_end
        for phrase in phrases[:-1]:
            await clock.sleep(self._config.phrase_gap)
            await self._send.send(Transcript(phrase, True, clock.now(), end=end))
        await clock.sleep(delays[index] if index < len(delays) else 0.1)
        await self._send.send(Transcript(phrases[-1], True, clock.now(), finalized=True, end=end))



class StreamingSTT(STTProvider[StreamingSTTConfig]):
    """Sends finals per phrase of its own accord, then the one answering finalize() (tests)."""

    name = "streaming-stt"
    config_model = StreamingSTTConfig

    async def open_stream(self) -> STTStream:
        return _StreamingSTTStream(self.config)


class ScriptedLLMConfig(ProviderConfig):
    provider: Literal["scripted-llm"] = "scripted-llm"
    replies: list[str] = Field(default_factory=lambda: ["Okay."], description="Replies, in turn; the last repeats.")
    first_token_delay: float = Field(0.1, ge=0)
    token_delay: float = Field(0.02, ge=0)
    fail: bool = Field(False, description="Raise before the first token (to test fallback).")
    fail_after_words: int | None = Field(None, ge=1, description="Raise after this many words.")


TOOL_CALL_MARK = re.compile(r"\[\[call ([A-Za-z0-9_-]+) (.*?)\]\]")
"""In a scripted reply, ``[[call name {"json": "arguments"}]]`` is a tool call the model makes
after its text (the next reply in the list answers the request that carries the results)."""


class ScriptedLLM(LLMProvider[ScriptedLLMConfig]):
    """Streams scripted replies word by word and records what it was asked. A reply may call
    tools: ``"Let me look. [[call check_order {\"order\": \"42\"}]]"``."""

    name = "scripted-llm"
    config_model = ScriptedLLMConfig

    def __init__(self, config: ScriptedLLMConfig) -> None:
        super().__init__(config)
        self.requests: list[list[Message]] = []
        self.offered_tools: list[list[ToolSpec]] = []
        self.warmed: list[list[Message]] = []
        self.tokens_sent = 0

    async def warm(self, messages: Sequence[Message]) -> None:
        self.warmed.append(list(messages))

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        async for item in self.stream_with_tools(messages, ()):
            if isinstance(item, str):
                yield item

    async def stream_with_tools(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[str | ToolCall]:
        self.requests.append(list(messages))
        self.offered_tools.append(list(tools))
        clock = current_clock()
        await clock.sleep(self.config.first_token_delay)
        if self.config.fail:
            raise RuntimeError("scripted failure")
        replies = self.config.replies
        reply = replies[min(len(self.requests), len(replies)) - 1]
        text = " ".join(TOOL_CALL_MARK.sub("", reply).split())
        async for word in self._words(text, clock):
            yield word
        for number, (name, arguments) in enumerate(TOOL_CALL_MARK.findall(reply) if tools else ()):
            yield ToolCall(f"call_{len(self.requests)}_{number}", name, arguments)

    async def _words(self, text: str, clock: Clock) -> AsyncIterator[str]:
        if not text:
            return
        for i, word in enumerate(text.split(" ")):
            if i and i == self.config.fail_after_words:
                raise RuntimeError("scripted failure mid-reply")
            if i:
                await clock.sleep(self.config.token_delay)
            self.tokens_sent += 1
            yield word if i == 0 else " " + word


class ToneTTSConfig(ProviderConfig):
    provider: Literal["tone"] = "tone"
    seconds_per_char: float = Field(0.06, gt=0, le=10)
    first_audio_delay: float = Field(0.05, ge=0, le=60)
    chunk_seconds: float = Field(0.2, gt=0, le=60)
    sample_rate: int = Field(24_000, ge=4_000, le=384_000)
    lead_silence: float = Field(0.0, ge=0, le=60, description="Silence before the tone, seconds.")
    alignment: bool = Field(False, description="Report TextMarks: which characters each chunk ends on.")
    speaks_mulaw: bool = Field(False, description="On a μ-law 8 kHz wire, speak μ-law 8 kHz (as phone voices can).")


class ToneTTS(TTSProvider[ToneTTSConfig]):
    """Speaks a 440 Hz tone as long as the text would take to say (after ``lead_silence``)."""

    name = "tone"
    config_model = ToneTTSConfig

    def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        return self._tone(text, self.config.sample_rate)

    def synthesize_for(self, text: str, wire_format: str) -> AsyncIterator[TTSAudio]:
        if self.config.speaks_mulaw and wire_format == "mulaw/8000":
            return self._as_mulaw(self._tone(text, MULAW_RATE))
        return self.synthesize(text)

    @staticmethod
    async def _as_mulaw(chunks: AsyncIterator[TTSAudio]) -> AsyncIterator[TTSAudio]:
        async for chunk in chunks:
            yield TTSAudio(mulaw_encode(chunk.pcm), MULAW_RATE, chunk.marks, encoding="mulaw")

    async def _tone(self, text: str, rate: int) -> AsyncIterator[TTSAudio]:
        clock = current_clock()
        config = self.config
        lead = int(config.lead_silence * rate)
        total = lead + int(len(text) * config.seconds_per_char * rate)
        chunk = int(config.chunk_seconds * rate)
        await clock.sleep(config.first_audio_delay)
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            t = (np.arange(start, start + n) / rate).astype(np.float32)
            tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
            tone[: max(0, lead - start)] = 0
            marks: tuple[TextMark, ...] = ()
            if config.alignment:
                end = (start + n) / rate
                spoken = min(len(text), int(max(0.0, end - config.lead_silence) / config.seconds_per_char))
                marks = (TextMark(spoken, end),)
            yield TTSAudio(tone.tobytes(), rate, marks)
            await anyio.lowlevel.checkpoint()


class ScriptedTurnConfig(ProviderConfig):
    provider: Literal["scripted-turn"] = "scripted-turn"
    verdicts: list[float] = Field(
        default_factory=lambda: [0.9], description="Probability of 'finished', pause by pause; the last repeats."
    )
    delay: float = Field(0.05, ge=0, le=60, description="Seconds each verdict takes (on the session clock, busy).")
    fail: bool = Field(False, description="Raise instead of answering.")


class ScriptedTurn(TurnDetector[ScriptedTurnConfig]):
    """An end-of-turn model that answers as scripted, and records what it was asked."""

    name = "scripted-turn"
    config_model = ScriptedTurnConfig

    def __init__(self, config: ScriptedTurnConfig) -> None:
        super().__init__(config)
        self.asked: list[tuple[float, str]] = []
        """(seconds of audio, transcript) of each question."""

    async def turn_complete(self, audio: bytes, transcript: str) -> float:
        self.asked.append((len(audio) / (2 * SAMPLE_RATE), transcript))
        clock = current_clock()
        with clock.busy():
            await clock.sleep(self.config.delay)
        if self.config.fail:
            raise RuntimeError("scripted end-of-turn failure")
        verdicts = self.config.verdicts
        return verdicts[min(len(self.asked), len(verdicts)) - 1]


@hookimpl
def register_providers(register: Any) -> None:
    for cls in (EnergyVAD, ScriptedSTT, StreamingSTT, ScriptedLLM, ToneTTS, ScriptedTurn):
        register(cls)


def speech_like(seconds: float, *, level: float = 0.3, seed: int = 0) -> bytes:
    """Noise bursts loud enough for the energy VAD: a stand-in for speech in timing tests."""
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-level, level, int(seconds * SAMPLE_RATE))
    return (samples * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * SAMPLE_RATE)
