"""Providers that fail on purpose, the way real ones do: for testing what a call does about it.

Each is a scripted fake (:mod:`voiceflow.testing.fakes`) with one ``fault`` set in its YAML
block. ``PluginRegistry(plugins=[fakes, faults])`` makes them available; an agent then writes, for
example, ``tts: [{provider: faulty-tts, fault: die_mid_stream}, {provider: tone}]`` and a test
checks the call still ends well. The faults:

=================  ==============================================================================
``refuse``         ``prepare()`` raises, as for a missing key or model file.
``hang_prepare``   ``prepare()`` never returns (a model server that accepts and never answers).
``hang_open``      Opening the stream never returns (STT ``open_stream``; LLM/TTS: the request).
``hang_first_byte``No first output ever (STT: ``finalize`` never returns).
``slow_first_byte``The first output comes ``slow`` seconds late, then all is normal.
``die_mid_stream`` Fails after ``after`` items (STT: after ``after`` audio frames).
``garbage``        Produces items of the wrong kind or shape (odd-length PCM, a bad sample rate,
                   bytes for text, a dict for a transcript, a VAD edge that is not an edge).
``empty``          Produces nothing (LLM/TTS: an empty stream; STT: the transcript stream ends).
``spin``           LLM/TTS: yields empty items forever, as fast as it can (no text, no audio).
``endless``        LLM/TTS: never finishes (text or audio forever, at a normal pace).
``future``         VAD: an edge timed far after the audio it was given.
=================  ==============================================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import anyio
import anyio.lowlevel
from pydantic import Field

from voiceflow.clock import current_clock
from voiceflow.frames import AudioFrame, Message, Transcript, TTSAudio, VADEvent, VADKind
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import ProviderUnavailable, STTStream, VADStream
from voiceflow.testing.fakes import (
    EnergyVAD,
    EnergyVADConfig,
    ScriptedLLM,
    ScriptedLLMConfig,
    ScriptedSTT,
    ScriptedSTTConfig,
    ToneTTS,
    ToneTTSConfig,
    _EnergyStream,
    _ScriptedSTTStream,
)

Fault = Literal[
    "none", "refuse", "hang_prepare", "hang_open", "hang_first_byte", "slow_first_byte",
    "die_mid_stream", "garbage", "empty", "spin", "endless", "future",
]
FAULTS: tuple[str, ...] = Fault.__args__  # type: ignore[attr-defined]


class InjectedFault(RuntimeError):
    """The failure a faulty provider raises (easy to tell from a real bug in a test)."""


class _Faulty:
    """What every faulty provider shares: the fault, and the ones that strike in ``prepare``."""

    config: Any

    async def prepare(self) -> None:
        if self.config.fault == "refuse":
            raise ProviderUnavailable("injected: refused to start")
        if self.config.fault == "hang_prepare":
            await anyio.sleep_forever()


async def _before_first_item(config: Any) -> None:
    """The faults that strike before a stream's first item: a hang, or a slow start."""
    if config.fault in ("hang_open", "hang_first_byte"):
        await anyio.sleep_forever()
    if config.fault == "slow_first_byte":
        await current_clock().sleep(config.slow)


# --- VAD ---------------------------------------------------------------------------------------


class FaultyVADConfig(EnergyVADConfig):
    provider: Literal["faulty-vad"] = "faulty-vad"  # type: ignore[assignment]
    fault: Fault = Field("none", description="Which failure to inject.")
    after: int = Field(1, ge=0, le=100_000, description="Frames before die_mid_stream / garbage.")


class _FaultyVADStream(_EnergyStream):
    def __init__(self, config: FaultyVADConfig) -> None:
        super().__init__(config)
        self._fault = config.fault
        self._after = config.after
        self._frames = 0

    def process(self, frame: AudioFrame) -> VADEvent | None:
        self._frames += 1
        if self._frames > self._after:
            if self._fault == "die_mid_stream":
                raise InjectedFault("injected: VAD died")
            if self._fault == "garbage":
                return "speech!"  # type: ignore[return-value]
            if self._fault == "future":
                return VADEvent(VADKind.SPEECH_START, frame.t + 1e9, frame.t)  # an edge from next year
        return super().process(frame)


class FaultyVAD(_Faulty, EnergyVAD):
    """Energy VAD with an injected fault (tests)."""

    name = "faulty-vad"
    config_model = FaultyVADConfig

    def create_stream(self) -> VADStream:
        return _FaultyVADStream(self.config)


# --- STT ---------------------------------------------------------------------------------------


class FaultySTTConfig(ScriptedSTTConfig):
    provider: Literal["faulty-stt"] = "faulty-stt"  # type: ignore[assignment]
    fault: Fault = Field("none", description="Which failure to inject.")
    after: int = Field(1, ge=0, le=100_000, description="Frames sent before die_mid_stream.")
    slow: float = Field(0.5, ge=0, le=60, description="Seconds of delay for slow_first_byte.")


class _FaultySTTStream(_ScriptedSTTStream):
    def __init__(self, config: FaultySTTConfig, script: Any) -> None:
        super().__init__(config, script)
        self._config = config

    async def send(self, frame: AudioFrame) -> None:
        await super().send(frame)
        if self._config.fault == "die_mid_stream" and self.frames > self._config.after:
            raise InjectedFault("injected: connection reset while sending audio")

    async def finalize(self) -> None:
        fault = self._config.fault
        if fault == "hang_first_byte":
            await anyio.sleep_forever()
        if fault == "slow_first_byte":
            await current_clock().sleep(self._config.slow)
        if fault == "garbage":
            await self._send.send({"text": "garbage"})  # type: ignore[arg-type]
            return
        await super().finalize()

    async def transcripts(self) -> AsyncIterator[Transcript]:
        if self._config.fault == "empty":
            return
        async for transcript in super().transcripts():
            yield transcript


class FaultySTT(_Faulty, ScriptedSTT):
    """Scripted STT with an injected fault (tests)."""

    name = "faulty-stt"
    config_model = FaultySTTConfig

    async def open_stream(self) -> STTStream:
        if self.config.fault == "hang_open":
            await anyio.sleep_forever()
        return _FaultySTTStream(self.config, self._script)


# --- LLM ---------------------------------------------------------------------------------------


class FaultyLLMConfig(ScriptedLLMConfig):
    provider: Literal["faulty-llm"] = "faulty-llm"  # type: ignore[assignment]
    fault: Fault = Field("none", description="Which failure to inject.")
    after: int = Field(1, ge=0, le=100_000, description="Words before die_mid_stream.")
    slow: float = Field(0.5, ge=0, le=60, description="Seconds of delay for slow_first_byte.")


class FaultyLLM(_Faulty, ScriptedLLM):
    """Scripted LLM with an injected fault (tests)."""

    name = "faulty-llm"
    config_model = FaultyLLMConfig

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        fault = self.config.fault
        await _before_first_item(self.config)
        if fault == "empty":
            return
        if fault == "garbage":
            yield b"\xff\xfe not text"  # type: ignore[misc]
            return
        if fault in ("spin", "endless"):
            clock = current_clock()
            while True:
                if fault == "spin":
                    await anyio.lowlevel.checkpoint()
                    yield ""
                else:
                    await clock.sleep(self.config.token_delay)
                    yield " and so on"
        count = 0
        async for delta in super().stream(messages):
            if fault == "die_mid_stream" and count >= self.config.after:
                raise InjectedFault("injected: stream reset mid-reply")
            count += 1
            yield delta


# --- TTS ---------------------------------------------------------------------------------------


class FaultyTTSConfig(ToneTTSConfig):
    provider: Literal["faulty-tts"] = "faulty-tts"  # type: ignore[assignment]
    fault: Fault = Field("none", description="Which failure to inject.")
    after: int = Field(1, ge=0, le=100_000, description="Chunks before die_mid_stream.")
    slow: float = Field(0.5, ge=0, le=60, description="Seconds of delay for slow_first_byte.")


class FaultyTTS(_Faulty, ToneTTS):
    """Tone TTS with an injected fault (tests)."""

    name = "faulty-tts"
    config_model = FaultyTTSConfig

    async def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        fault = self.config.fault
        await _before_first_item(self.config)
        if fault == "empty":
            return
        if fault == "garbage":
            yield TTSAudio(b"\x01\x02\x03", 24_000)  # an odd number of bytes: not whole samples
            return
        if fault == "spin":
            while True:
                await anyio.lowlevel.checkpoint()
                yield TTSAudio(b"", 24_000)
        if fault == "endless":
            while True:
                async for chunk in super().synthesize(text):
                    yield chunk
        count = 0
        async for chunk in super().synthesize(text):
            if fault == "die_mid_stream" and count >= self.config.after:
                raise InjectedFault("injected: audio stream dropped")
            count += 1
            yield chunk


@hookimpl
def register_providers(register: Any) -> None:
    for cls in (FaultyVAD, FaultySTT, FaultyLLM, FaultyTTS):
        register(cls)
