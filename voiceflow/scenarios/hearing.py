"""``caller-script``: a speech recogniser that hears exactly what the scenario's caller said.

Turn-taking depends on words (a trailing "and" holds the turn, "mhm" never interrupts, "stop"
always does, the agent's own words in an echo are ignored), so a scenario on scripted providers
needs a recogniser whose words follow the audio the caller really sent, at the times it sent
them. This one reads them from the simulated caller's script (:class:`WordLog`, kept by
:class:`~voiceflow.scenarios.line.ScenarioLine`): a final holds the words said in the audio it
was sent since the previous final (from where the voice detector said the speech began), and
interim transcripts grow word by word while the caller talks, as a streaming recogniser's do. The
echo of the agent's voice is heard as the agent's words. A move may be misheard (``heard_as``) or
heard with a low ``confidence``.

It serves only calls run by ``voiceflow test`` (it has nothing to listen to anywhere else), and
its delays run on the session clock like the other scripted providers'.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from voiceflow.clock import current_clock
from voiceflow.config.base import ProviderConfig
from voiceflow.frames import AudioFrame, Transcript
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import ProviderUnavailable, STTProvider, STTStream
from voiceflow.testing.fakes import _QueuedTranscripts  # the scripted recognisers' transcript queue

ONSET_MARGIN = 0.3
"""Seconds before the detected start of speech from which words still belong to it (the
detector needs a few frames of voice to decide; the words' times are estimates)."""

UTTERANCE_GAP = 0.6
"""A longer gap between words starts a new utterance in the interim transcripts."""


@dataclass(frozen=True, slots=True)
class HeardWord:
    text: str
    start: float
    end: float
    confidence: float | None
    source: Literal["caller", "echo"]


@dataclass
class WordLog:
    """Every word that reaches the caller's microphone, with its session-clock times."""

    words: list[HeardWord] = field(default_factory=list)
    finalized: set[HeardWord] = field(default_factory=set)
    """Words already in a final (shared by the call's streams: a replacement stream goes on)."""

    def add(self, words: list[HeardWord]) -> None:
        self.words.extend(words)
        self.words.sort(key=lambda word: word.start)


_listening: ContextVar[WordLog] = ContextVar("voiceflow_scenario_words")


@contextmanager
def hearing(log: WordLog) -> Iterator[None]:
    """Streams opened inside this block (the session's) hear ``log``."""
    token = _listening.set(log)
    try:
        yield
    finally:
        _listening.reset(token)


class CallerScriptConfig(ProviderConfig):
    provider: Literal["caller-script"] = "caller-script"
    delay: float = Field(0.1, ge=0, le=10, description="Seconds from finalize() to the final transcript.")
    interims: bool = Field(True, description="Send interim transcripts while the caller talks.")
    interim_after: float = Field(0.15, ge=0, le=5, description="Seconds into a word before it shows in an interim.")
    confidence: float | None = Field(
        None, ge=0, le=1, description="Confidence of every final (a move's own `confidence` wins)."
    )


class _Stream(_QueuedTranscripts):
    def __init__(self, log: WordLog, config: CallerScriptConfig) -> None:
        super().__init__()
        self._log = log
        self._config = config
        self._since = -math.inf
        self._heard_until = -math.inf
        self._interim = ""

    def speech_started(self, t: float) -> None:
        self._since = t

    def _pending(self) -> list[HeardWord]:
        """Words not yet in a final that belong to the speech in progress."""
        done, since = self._log.finalized, self._since - ONSET_MARGIN
        return [w for w in self._log.words if w not in done and since <= w.start < self._heard_until]

    async def send(self, frame: AudioFrame) -> None:
        self._heard_until = frame.t + frame.duration
        if not self._config.interims:
            return
        shown = [w for w in self._pending() if w.start + self._config.interim_after <= self._heard_until]
        for index in range(len(shown) - 1, 0, -1):
            if shown[index].start - shown[index - 1].end > UTTERANCE_GAP:
                shown = shown[index:]
                break
        text = " ".join(w.text for w in shown)
        if text and text != self._interim:
            self._interim = text
            await self._send.send(Transcript(text, False, current_clock().now()))

    async def finalize(self) -> None:
        clock = current_clock()
        until = self._heard_until
        with clock.busy():
            await clock.sleep(self._config.delay)
        words = [w for w in self._pending() if w.start < until]  # begun: the recogniser has it
        self._log.finalized.update(words)
        self._interim = ""
        confidences = [w.confidence for w in words if w.confidence is not None]
        confidence = min(confidences) if confidences else self._config.confidence
        text = " ".join(w.text for w in words)
        await self._send.send(Transcript(text, True, clock.now(), confidence=confidence, finalized=True, end=until))


class CallerScript(STTProvider[CallerScriptConfig]):
    """Hears exactly what a voiceflow-test scenario's caller said (scenario runs only)."""

    name = "caller-script"
    config_model = CallerScriptConfig

    async def open_stream(self) -> STTStream:
        log = _listening.get(None)
        if log is None:
            raise ProviderUnavailable("caller-script hears only the callers of `voiceflow test` scenarios")
        return _Stream(log, self.config)


@hookimpl
def register_providers(register: Any) -> None:
    register(CallerScript)
