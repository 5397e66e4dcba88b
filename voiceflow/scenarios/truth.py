"""What really happened on a scenario's line, as data: the caller's ground truth beside the agent's turns.

A scenario's checks answer yes or no; a benchmark needs the facts behind them. The caller's script
knows exactly where its voice was (each clip's voiced stretches, the pauses a scenario inserted),
which the agent can only estimate, and the line knows when each agent turn's audio reached the
caller. :func:`ground_truth` puts both on one axis, seconds from the call's start, so measures
such as "did the agent begin talking inside the caller's pause?" or "how long after the caller's
last voiced sample was the turn judged over?" are arithmetic on plain values, not a walk through
the runner's live objects.

An *utterance* is what the caller means as one turn: one speaking move (``say`` or ``audio``,
pauses inside it included), joined with the speaking moves that follow it without waiting for the
agent (timed from the previous move) and start within :data:`UTTERANCE_GAP` of its last voice (a
sentence scripted in two halves with a breath between them).
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.scenarios.line import Move, ScenarioLine
from voiceflow.scenarios.results import ScenarioRun

Span = tuple[float, float]

UTTERANCE_GAP = 1.0
"""Seconds of silence up to which a speaking move timed from the previous one continues its
utterance; a longer wait is a new turn."""


@dataclass(frozen=True)
class CallerSound:
    """One caller move as it sounded on the line."""

    index: int
    """Its position in the scenario's ``caller`` list."""
    id: str | None
    action: str
    """say, audio, noise, cough, music, silence or press."""
    speech: bool
    """The caller talking (say, audio), as opposed to noise, music, silence or keys."""
    anchor: str
    """What its timing counted from: previous, agent_starts or agent_done."""
    start: float
    end: float
    voice: tuple[Span, ...]
    """The stretches of voice (or noise) in it, from the clip: exact, not detected."""
    words: str
    """What it says (the script's text; empty for a recording without ``text``)."""

    @property
    def onset(self) -> float | None:
        return self.voice[0][0] if self.voice else None

    @property
    def voice_end(self) -> float | None:
        return self.voice[-1][1] if self.voice else None


@dataclass(frozen=True)
class Utterance:
    """What the caller meant as one turn (see the module's docstring)."""

    sounds: tuple[CallerSound, ...]

    @property
    def voice(self) -> tuple[Span, ...]:
        return tuple(span for sound in self.sounds for span in sound.voice)

    @property
    def onset(self) -> float:
        return self.voice[0][0]

    @property
    def end(self) -> float:
        """The end of its last voiced sample: where the caller really stopped talking."""
        return self.voice[-1][1]

    @property
    def pauses(self) -> tuple[Span, ...]:
        """The silences between its stretches of voice (stops shorter than the clip's run gap,
        inside words, are not among them)."""
        voice = self.voice
        return tuple((a[1], b[0]) for a, b in zip(voice, voice[1:], strict=False) if b[0] > a[1])

    @property
    def words(self) -> str:
        return " ".join(sound.words for sound in self.sounds if sound.words)

    def within(self, t: float) -> bool:
        """Whether ``t`` falls after its first voice and before its last (a pause included)."""
        return self.onset < t < self.end

    def in_pause(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.pauses)


@dataclass(frozen=True)
class AgentTurn:
    """One agent turn of the call's timeline, with what the caller heard of it."""

    index: int
    kind: str
    outcome: str
    interruptible: bool | None
    """As the reply was made (None: the caller never heard it, so it was never asked)."""
    heard: tuple[Span, ...]
    """Stretches of its audio at the caller's ear (a pause at barge-in splits them)."""
    marks: dict[str, float]
    """The timeline's marks (endpoint, interrupted, …) in seconds from the call's start."""
    timeline: TurnTimeline

    @property
    def first_heard(self) -> float | None:
        return self.heard[0][0] if self.heard else None

    @property
    def last_heard(self) -> float | None:
        return self.heard[-1][1] if self.heard else None

    def audible_at(self, t: float) -> bool:
        """Whether this turn was under way at the caller's ear at ``t`` (between its first and
        last audio; a pause of its own in between counts)."""
        return bool(self.heard) and self.heard[0][0] <= t < self.heard[-1][1]

    def stops_after(self, t: float) -> float | None:
        """Seconds from ``t`` until its audio next went silent at the caller's ear (0 when it
        already was)."""
        for start, end in self.heard:
            if start <= t < end:
                return end - t
        return 0.0 if self.audible_at(t) else None


@dataclass(frozen=True)
class CallTruth:
    """A scenario's call as facts on one time axis (seconds from the call's start)."""

    sounds: tuple[CallerSound, ...]
    utterances: tuple[Utterance, ...]
    turns: tuple[AgentTurn, ...]

    def endpoints(self) -> list[float]:
        """Every time a caller turn was judged over (the ``endpoint`` marks), in order."""
        return sorted(turn.marks["endpoint"] for turn in self.turns if "endpoint" in turn.marks)


def ground_truth(run: ScenarioRun) -> CallTruth | None:
    """The facts of ``run``'s call; None when it never ran (an error before the call)."""
    line, result = run.line, run.result
    if line is None or result is None:
        return None
    sounds = tuple(sound for move in line.moves if (sound := _sound(line, move)) is not None)
    return CallTruth(sounds, _utterances(sounds), _turns(line, result.timeline.turns))


def _sound(line: ScenarioLine, move: Move) -> CallerSound | None:
    if move.start is None or move.end is None:
        return None
    start, end = move.start - line.origin, move.end - line.origin
    voice = tuple((start + a, min(start + b, end)) for a, b in move.clip.runs if start + a < end)
    event = move.event
    anchor = event.after or ("agent_done" if move.index == 0 and line.greets else "previous")
    words = " ".join(word.text for word in move.clip.words)
    return CallerSound(move.index, event.id, event.action, event.speaks, anchor, start, end, voice, words)


def _utterances(sounds: tuple[CallerSound, ...]) -> tuple[Utterance, ...]:
    groups: list[list[CallerSound]] = []
    for sound in sounds:
        if not sound.speech or not sound.voice:
            continue
        previous = groups[-1][-1] if groups else None
        joins = (
            previous is not None
            and previous.index == sound.index - 1
            and sound.anchor == "previous"
            and previous.voice_end is not None
            and sound.voice[0][0] - previous.voice_end < UTTERANCE_GAP
        )
        if joins:
            groups[-1].append(sound)
        else:
            groups.append([sound])
    return tuple(Utterance(tuple(group)) for group in groups)


def _turns(line: ScenarioLine, timelines: list[TurnTimeline]) -> tuple[AgentTurn, ...]:
    turns = []
    for timeline in timelines:
        speech = next((s for s in line.speech if s.reply.timeline is timeline), None)
        heard = tuple((a - line.origin, b - line.origin) for a, b in speech.spans()) if speech else ()
        marks = {name: t - line.origin for name, t in timeline.marks.items()}
        interruptible = speech.reply.interruptible if speech is not None else None
        turns.append(AgentTurn(timeline.index, timeline.kind, timeline.outcome, interruptible, heard, marks, timeline))
    return tuple(turns)
