"""The simulated caller's phone line: a transport whose caller reacts to what the agent does.

The agent side (playout at 20 ms a frame, pause, flush, playback marks) is the file transport's
own, so the agent is heard exactly as in ``voiceflow run``. The caller side is scripted: before
each move the caller waits (sending a quiet line) until its anchor has happened (the agent
started a turn, finished one, or the caller's own previous move ended) and its ``wait`` has
passed on the call's clock; then it plays the move's sound, frame by frame, as a phone line
delivers it. Nothing is timed from the start of the call, so a slow machine moves the caller
along with the agent.

Under the caller's sound go the line's noise floor and, on a speakerphone, the agent's own audio
coming back (echo), mixed from what the caller heard ``delay`` seconds before. The line keeps what
a scenario's checks and report need: each move's times, each agent turn's heard frames, the words
said when (for the caller-script recogniser), and both sides' audio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceflow.clock import current_clock
from voiceflow.frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.providers import CallTransport, KeypadCallback, OutFrame, PlayedCallback
from voiceflow.runtime.reply import PlaybackMark, Reply
from voiceflow.scenarios.hearing import HeardWord, WordLog
from voiceflow.scenarios.model import CallerEvent, Scenario, Timing
from voiceflow.scenarios.sounds import Clip, Samples, said, to_pcm

ENDED = ("completed", "interrupted", "failed", "discarded")


@dataclass
class Move:
    """One caller move as it happened (session-clock times)."""

    index: int
    event: CallerEvent
    clip: Clip
    start: float | None = None
    last_frame: float | None = None
    finished: bool = False

    @property
    def end(self) -> float | None:
        return None if self.last_frame is None else self.last_frame + FRAME_SECONDS

    @property
    def onset(self) -> float | None:
        """When the caller's voice (or noise) first sounded in this move."""
        if self.start is None or self.clip.onset is None:
            return None
        return self.start + self.clip.onset


@dataclass
class AgentSpeech:
    """One agent turn as the caller heard it: the times of its frames."""

    reply: Reply
    frames: list[float] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.frames[0]

    @property
    def end(self) -> float:
        return self.frames[-1] + FRAME_SECONDS

    @property
    def ended(self) -> bool:
        return self.reply.timeline.outcome in ENDED

    def spans(self) -> list[tuple[float, float]]:
        """Stretches of unbroken audio (a pause at barge-in splits them)."""
        spans: list[tuple[float, float]] = []
        for t in self.frames:
            if spans and t - spans[-1][1] < FRAME_SECONDS / 2:
                spans[-1] = (spans[-1][0], t + FRAME_SECONDS)
            else:
                spans.append((t, t + FRAME_SECONDS))
        return spans


class Track:
    """A growable mono recording addressed by seconds from the call's start."""

    def __init__(self) -> None:
        self.samples = np.zeros(SAMPLE_RATE * 30, dtype=np.int16)
        self.length = 0

    def add(self, at: float, pcm: Samples) -> None:
        start = max(0, round(at * SAMPLE_RATE))
        end = start + len(pcm)
        if end > len(self.samples):
            self.samples = np.concatenate([self.samples, np.zeros(max(end, len(self.samples)), np.int16)])
        self.samples[start:end] = pcm
        self.length = max(self.length, end)

    def window(self, at: float, count: int) -> Samples:
        start = round(at * SAMPLE_RATE)
        out = np.zeros(count, dtype=np.int16)
        lo, hi = max(start, 0), min(start + count, self.length)
        if hi > lo:
            out[lo - start : hi - start] = self.samples[lo:hi]
        return out


@dataclass(frozen=True, slots=True)
class _Tagged:
    """A playback mark with the frame it belongs to, so the line learns what was heard."""

    mark: object
    pcm: bytes


class ScenarioLine(CallTransport):
    caller_audio_end_is_hangup = False
    clock = "virtual"

    def __init__(self, scenario: Scenario, clips: list[Clip], playout: CallTransport, *, greets: bool) -> None:
        self.scenario = scenario
        self.call_id = f"scenario:{scenario.name}"
        self.moves = [Move(i, event, clip) for i, (event, clip) in enumerate(zip(scenario.caller, clips, strict=True))]
        self.playout = playout
        self.greets = greets
        self.words = WordLog()
        self.speech: list[AgentSpeech] = []
        self.caller_track = Track()
        self.agent_track = Track()
        self.origin = 0.0
        self.gave_up: str | None = None
        self._by_reply: dict[int, AgentSpeech] = {}
        self._echo_words: dict[int, int] = {}
        self._callback: PlayedCallback = lambda mark, t: None
        self._keypad: KeypadCallback | None = None
        self._rng = np.random.default_rng(7)
        self._jitter = np.random.default_rng(11)
        self._clump: tuple[int, float] | None = None
        """The clump being delivered (its number, when it arrives)."""

    # --- the agent's side: the file transport's playout, watched ----------------------------

    async def play(self, out: OutFrame) -> None:
        await self.playout.play(OutFrame(out.frame, _Tagged(out.mark, out.frame.pcm), out.wire))

    def flush(self) -> None:
        self.playout.flush()

    def pause(self) -> bool:
        return self.playout.pause()

    def resume(self) -> None:
        self.playout.resume()

    def notify(self, event: str, **data: Any) -> None:
        self.playout.notify(event, **data)

    async def run(self) -> None:
        await self.playout.run()

    def on_played(self, callback: PlayedCallback) -> None:
        self._callback = callback
        self.playout.on_played(self._played)

    def on_dtmf(self, callback: KeypadCallback) -> None:
        self._keypad = callback

    def _played(self, tagged: object, t: float) -> None:
        mark = tagged.mark if isinstance(tagged, _Tagged) else tagged
        if isinstance(tagged, _Tagged):
            self.agent_track.add(t - self.origin, np.frombuffer(tagged.pcm, dtype=np.int16))
        if isinstance(mark, PlaybackMark):
            speech = self._by_reply.get(id(mark.reply))
            if speech is None:
                speech = self._by_reply[id(mark.reply)] = AgentSpeech(mark.reply)
                self.speech.append(speech)
            speech.frames.append(t)
        self._callback(mark, t)
        if isinstance(mark, PlaybackMark):
            self._hear_echo_words(mark.reply, t)

    def _hear_echo_words(self, reply: Reply, t: float) -> None:
        """The agent's words, as they reach the caller, come back in the echo ``delay`` later."""
        echo = self.scenario.echo
        if echo is None or not echo.words:
            return
        words = reply.heard_text().replace("…", "").split()
        told = self._echo_words.get(id(reply), 0)
        if len(words) > told:
            self._echo_words[id(reply)] = len(words)
            at = t + echo.delay
            self.words.add([HeardWord(word, at - FRAME_SECONDS, at, None, "echo") for word in words[told:]])

    # --- the caller's side ---------------------------------------------------------------------

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        clock = current_clock()
        self.origin = t = clock.now()
        for move in self.moves:
            ref = t
            while not self._due(move.event, ref, t, first=move.index == 0):
                if t - ref >= self.scenario.max_wait:
                    self.gave_up = (
                        f"gave up after {self.scenario.max_wait:g} s waiting for the agent "
                        f"({self._anchor(move.event, move.index == 0)})"
                    )
                    return
                yield await self._frame(t, None)
                t += FRAME_SECONDS
            move.start = t
            self.words.add(_words_of(move, t))
            samples = move.clip.samples
            keys = _key_times(move.event, t)
            held_until = t + move.event.late
            for at in range(0, len(samples), FRAME_SAMPLES):
                move.last_frame = t
                while keys and keys[0][1] < t + FRAME_SECONDS and self._keypad is not None:
                    self._keypad(*keys.pop(0))
                yield await self._frame(t, samples[at : at + FRAME_SAMPLES], held_until)
                t += FRAME_SECONDS
            move.finished = True
        ref = t
        hang_up = self.scenario.hang_up
        while not self._due(hang_up, ref, t, first=False) and t - ref < self.scenario.max_wait:
            yield await self._frame(t, None)
            t += FRAME_SECONDS

    def _anchor(self, timing: Timing, first: bool) -> str:
        if timing.after is not None:
            return timing.after
        return "agent_done" if first and self.greets else "previous"

    def _due(self, timing: Timing, ref: float, t: float, *, first: bool) -> bool:
        """Whether the move timed by ``timing`` (waiting since ``ref``) may start at ``t``."""
        anchor = self._anchor(timing, first)
        if anchor == "previous":
            return t >= ref + timing.wait - 1e-9
        speech = self.agent_turn(ref, timing.turn)
        if speech is None:
            return False
        if anchor == "agent_starts":
            return t >= speech.start + timing.wait - 1e-9
        return speech.ended and t >= speech.end + timing.wait - 1e-9

    def agent_turn(self, ref: float, kind: str | None) -> AgentSpeech | None:
        """The agent turn in progress at ``ref``, or else the first one heard after it."""
        for speech in self.speech:
            if kind is not None and speech.reply.kind != kind:
                continue
            if not speech.ended or speech.end > ref:
                return speech
        return None

    async def _frame(self, t: float, samples: Samples | None, held_until: float = 0.0) -> AudioFrame:
        """The caller's 20 ms starting at ``t``: the move's sound over the line's noise and echo,
        delivered once all of it has arrived (and not before ``held_until``: a late burst)."""
        await current_clock().sleep_until(max(t + FRAME_SECONDS, held_until, self._clump_arrives(t)))
        mixed = np.zeros(FRAME_SAMPLES, dtype=np.float64)
        if samples is not None:
            mixed[: len(samples)] += samples
        if self.scenario.line_noise is not None:
            rms = 32768.0 * 10.0 ** (self.scenario.line_noise / 20.0)
            mixed += self._rng.normal(0.0, rms, FRAME_SAMPLES)
        echo = self.scenario.echo
        if echo is not None:
            back = self.agent_track.window(t - self.origin - echo.delay, FRAME_SAMPLES)
            mixed += back.astype(np.float64) * 10.0 ** (echo.gain / 20.0)
        pcm = to_pcm(mixed)
        self.caller_track.add(t - self.origin, pcm)
        return AudioFrame(pcm.tobytes(), t)

    def _clump_arrives(self, t: float) -> float:
        """When the clump holding the frame spoken at ``t`` arrives (``-inf``: frame by frame)."""
        delivery = self.scenario.delivery
        if delivery.clump <= 0:
            return float("-inf")
        number = int(np.ceil((t + FRAME_SECONDS - self.origin) / delivery.clump - 1e-6))
        if self._clump is None or self._clump[0] != number:
            arrives = self.origin + number * delivery.clump + float(self._jitter.uniform(0.0, delivery.jitter))
            self._clump = (number, max(arrives, self._clump[1] if self._clump is not None else arrives))
        return self._clump[1]

    def close(self) -> None:
        close = getattr(self.playout, "close", None)
        if close is not None:
            close()

    def tracks(self) -> tuple[Samples, Samples]:
        """(caller, agent) from the call's start, equal lengths."""
        length = max(self.caller_track.length, self.agent_track.length)
        return self.caller_track.window(0.0, length), self.agent_track.window(0.0, length)


def _key_times(event: CallerEvent, t: float) -> list[tuple[str, float]]:
    """When each key of a ``press`` move started at ``t`` goes down."""
    return [(key, t + i * event.key_gap) for i, key in enumerate(event.press or "")]


def _words_of(move: Move, t: float) -> list[HeardWord]:
    """What the recogniser can hear in ``move`` started at ``t`` (its mishearing, if scripted)."""
    event, words = move.event, move.clip.words
    if event.heard_as is not None:
        words = said(move.clip, event.heard_as).words
    return [HeardWord(w.text, t + w.start, t + w.end, event.confidence, "caller") for w in words]
