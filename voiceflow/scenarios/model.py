"""The scenario file: a simulated caller, scripted against what the agent does, and what to expect.

A caller's every move is timed from something the agent did (it started speaking, it finished a
turn) or from the caller's own previous move, never from the start of the call: the agent's
latency moves with the machine's load, and a caller timed in absolute seconds would interrupt a
different sentence on a busy machine (or none at all). The models here are the whole format;
``docs/testing-agents.md`` shows it by example.

They build on :class:`~voiceflow.config.base.Strict`, so a scenario file is held to the agent
file's rules (unknown keys are errors, no NaN, no booleans for numbers) and its mistakes are
reported the same way, with file, line and field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from voiceflow.audio import check_recording
from voiceflow.config.base import Strict
from voiceflow.metrics.timeline import SPANS

Anchor = Literal["previous", "agent_starts", "agent_done"]
ACTIONS = ("say", "audio", "noise", "cough", "music", "silence", "press")
TurnKind = Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
"""A kind of agent turn as the timeline names it: greeting, reply, reprompt, unclear, apology,
hold, goodbye… (not a closed list: the runtime may add kinds)."""
Seconds = Annotated[float, Field(ge=0, le=3600)]


class Timing(Strict):
    """When a caller move starts: ``wait`` seconds after the anchor.

    ``previous``: the end of the caller's previous move (for the first one, the call's start).
    ``agent_starts``: the agent's first audio of its turn in progress, or of its next turn.
    ``agent_done``: the end of that turn as the caller heard it (finished, cut off or failed).
    """

    after: Anchor | None = Field(
        None,
        description="What the wait counts from. Default: previous; for the first move of a call "
        "whose agent greets, agent_done (the caller lets the greeting finish).",
    )
    wait: Seconds = Field(0.0, description="Seconds after the anchor.")
    turn: TurnKind | None = Field(None, description="With agent_starts / agent_done: only a turn of this kind counts.")

    @model_validator(mode="after")
    def _turn_needs_the_agent(self) -> Timing:
        if self.turn is not None and self.after in (None, "previous"):
            raise ValueError("turn: only with after: agent_starts or agent_done")
        return self


class Pause(Strict):
    """Silence inserted into a recording (a caller stopping mid-sentence)."""

    at: Seconds = Field(description="Seconds into the recording (after trimming).")
    seconds: float = Field(gt=0, le=60, description="How long the caller stops.")


def _said_pieces(value: Any) -> Any:
    """``say: "text"`` is ``say: ["text"]``: a list holds lines of text and pauses (seconds)."""
    return [value] if isinstance(value, str) else value


def _said_piece(value: Any) -> Any:
    """A line (text) or a pause (seconds), with one clear message when it is neither."""
    if isinstance(value, str):
        if not value.strip() or len(value) > 2000:
            raise ValueError("a line to say must have 1 to 2000 characters")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 < value <= 60:
            raise ValueError(f"a pause is more than 0 and at most 60 seconds, got {value!r}")
        return float(value)
    raise ValueError(f"expected a line (text) or a pause (seconds), got {value!r}")


SayPiece = Annotated[str | float, BeforeValidator(_said_piece)]


class CallerEvent(Timing):
    """One move of the simulated caller: exactly one of the actions, at its time."""

    id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="A name for checks to refer to (yielded.to)."
    )
    say: Annotated[list[SayPiece], BeforeValidator(_said_pieces), Field(min_length=1)] | None = Field(
        None,
        description="Speech synthesized with espeak-ng. A list mixes lines and pauses in seconds: "
        "[\"my number is five five five\", 0.8, \"one two three\"] is one utterance with a "
        "mid-sentence pause.",
    )
    audio: Path | None = Field(None, description="A WAV recording (any rate), relative to the scenario file.")
    noise: float | None = Field(None, gt=0, le=600, description="Seconds of white noise (-30 dBFS RMS, then gain).")
    cough: float | None = Field(None, gt=0, le=5, description="A cough-like burst this many seconds long.")
    music: float | None = Field(None, gt=0, le=600, description="Seconds of hold music (made with sox).")
    silence: float | None = Field(None, gt=0, le=3600, description="Seconds of a quiet line.")
    press: str | None = Field(
        None, pattern=r"^[0-9*#A-D]{1,64}$", description="Keys pressed on the keypad (DTMF, out of band), one per key_gap."
    )

    voice: str | None = Field(None, max_length=64, description="espeak-ng voice (default: the scenario's).")
    rate: int | None = Field(None, ge=80, le=450, description="Words per minute (default: the scenario's).")
    pitch: int | None = Field(None, ge=0, le=99, description="espeak-ng pitch, 0-99.")
    gain: float = Field(0.0, ge=-80, le=30, description="dB added to the sound's own level.")
    key_gap: float = Field(0.25, gt=0, le=10, description="press: seconds from one key to the next.")
    late: float = Field(
        0.0,
        ge=0,
        le=10,
        description="A network hiccup: this move's audio reaches the agent this many seconds late, "
        "in one burst (each frame keeps the time it was spoken).",
    )
    start: Seconds | None = Field(None, description="audio: start this far into the recording.")
    end: Seconds | None = Field(None, description="audio: stop this far into the recording.")
    pauses: list[Pause] = Field(default_factory=list, description="audio: silences inserted mid-recording.")
    text: str | None = Field(
        None, max_length=4000, description="audio: what the recording says (for the caller-script recogniser)."
    )
    confidence: float | None = Field(
        None, ge=0, le=1, description="The caller-script recogniser hears this move with this confidence."
    )
    heard_as: str | None = Field(
        None, max_length=4000, description="The caller-script recogniser mishears it as this text."
    )

    @field_validator("audio")
    @classmethod
    def _recording(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Relative to the scenario file, and playable: refused when the file loads, not mid-run."""
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        path = value if value.is_absolute() or base is None else Path(base) / value
        check_recording(path)
        return path

    @model_validator(mode="after")
    def _one_action(self) -> CallerEvent:
        given = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            found = f" (found: {', '.join(given)})" if given else ""
            raise ValueError(f"a caller move needs exactly one of {', '.join(ACTIONS)}{found}")
        if self.audio is None and (self.start is not None or self.end is not None or self.pauses or self.text):
            raise ValueError("start, end, pauses and text are for audio: moves")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:g}) must come after start ({self.start:g})")
        return self

    @property
    def action(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)

    @property
    def speaks(self) -> bool:
        """Whether this move is the caller talking (an utterance the agent must not cut into)."""
        return self.say is not None or self.audio is not None


def _text_match(value: Any) -> Any:
    return {"exactly": value} if isinstance(value, str) else value


class TextMatch(Strict):
    """How a text must look: a plain string means ``exactly``. Comparisons ignore case, punctuation and
    spacing ("Hello, there…" is "hello there")."""

    exactly: str | None = Field(None, description="Exactly these words (a plain string means this).")
    contains: str | None = Field(None, description="These words, in a row, somewhere in it.")
    matches: str | None = Field(None, description="A Python regular expression searched in the raw text.")
    like: str | None = Field(None, description="Close to these words (see max_wer): for real recognisers.")
    max_wer: float = Field(0.25, ge=0, le=1, description="with like: the largest word error rate allowed.")

    @field_validator("matches")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from None
        return pattern

    @model_validator(mode="after")
    def _one_rule(self) -> TextMatch:
        rules = [self.exactly, self.contains, self.matches, self.like]
        if sum(rule is not None for rule in rules) != 1:
            raise ValueError("a text check needs exactly one of exactly, contains, matches, like")
        return self


Text = Annotated[TextMatch, BeforeValidator(_text_match)]


class Bounds(Strict):
    min: float | None = Field(None, ge=0, le=3600)
    max: float | None = Field(None, ge=0, le=3600)

    @model_validator(mode="after")
    def _some(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class Yielded(Strict):
    """The agent went silent soon after the caller started talking over it."""

    to: str = Field(description="The id of the caller move that talked over the agent.")
    within: float = Field(gt=0, le=60, description="Seconds from that move's first voiced sound.")


class TurnCheck(Strict):
    """Checks on one agent turn, picked by kind and position."""

    turn: TurnKind = Field("reply", description="Which kind of agent turn (greeting, reply, reprompt…; any: every kind).")
    n: int = Field(1, ge=-100, le=100, description="Which one of them: 1 the first, -1 the last.")
    outcome: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")] | None = Field(
        None, description="completed, interrupted, failed, ignored… (as the timeline says)."
    )
    during: str | None = Field(None, description="The id of a caller move it began (was first heard) during.")
    caller_said: Text | None = Field(None, description="The caller's turn this answers, as recognised.")
    said: Text | None = Field(None, description="All the agent generated for this turn.")
    heard: Text | None = Field(None, description="What the caller heard of it.")
    context: Literal["heard", "said", "nothing"] | None = Field(
        None,
        description="What the LLM was shown of this turn when next asked: what was heard (cut at "
        "barge-in), all of it, or nothing.",
    )
    overlap: Text | None = Field(None, description="A note on caller speech over it that did not interrupt.")
    overlaps: int | None = Field(None, ge=0, le=1000, description="How many such notes.")
    yielded: Yielded | None = None
    endpointing: Text | None = Field(None, description="A note on how the caller's turn end was judged.")
    state: Text | None = Field(None, description="A conversation-state switch during this turn.")
    tools: list[str] | None = Field(None, description="The tools called, in order.")
    failure: Text | None = Field(None, description="The failure this turn had or apologises for.")
    fallback: Text | None = Field(None, description="A note on a provider that failed and was replaced.")
    latency: dict[str, Bounds] | None = Field(
        None,
        description="Timeline spans in seconds (endpointing, mouth_to_ear, …). Deterministic on the "
        "virtual clock only where no real compute is in the span: give real models a wide margin.",
    )

    @field_validator("latency")
    @classmethod
    def _known_spans(cls, latency: dict[str, Bounds] | None) -> dict[str, Bounds] | None:
        unknown = sorted(set(latency or ()) - set(SPANS))
        if unknown:
            raise ValueError(f"unknown span {unknown[0]!r} (known: {', '.join(SPANS)})")
        return latency

    @field_validator("n")
    @classmethod
    def _not_zero(cls, n: int) -> int:
        if n == 0:
            raise ValueError("n counts from 1 (the first) or from -1 (the last)")
        return n


TurnLabel = Annotated[str, Field(pattern=r"^[a-z_]{1,32}(/[a-z_]{1,32})?$")]


class Expect(Strict):
    turns: list[TurnLabel] | None = Field(
        None,
        description="The agent's turns in order, as kind or kind/outcome (reply/interrupted); "
        "preemptive replies dropped unheard are left out.",
    )
    cut_offs: Annotated[int, Field(ge=0, le=1000)] | Bounds | None = Field(
        None, description="Agent turns that began while the caller was mid-utterance: a number, or {max: n}."
    )
    ended: str | None = Field(None, description="Why the call ended (its beginning: goodbye, end of input…).")
    pressed: Annotated[str, Field(pattern=r"^[0-9*#A-D]{0,64}$")] | None = Field(
        None,
        description="The keys the agent pressed, in order, as the caller's line heard them: keypad "
        "tones found in the agent's audio by a Goertzel receiver (\"\": none).",
    )
    checks: list[TurnCheck] = Field(default_factory=list, description="Checks on single agent turns.")


class Echo(Strict):
    """The agent's own voice coming back into the caller's microphone (a speakerphone)."""

    gain: float = Field(-15.0, ge=-80, le=0, description="dB relative to the agent's audio.")
    delay: float = Field(0.1, ge=0, le=2, description="Seconds after the caller heard it.")
    words: bool = Field(True, description="The caller-script recogniser hears the agent's words in it.")


class Delivery(Strict):
    """How the caller's audio reaches the agent over a jittery network. Each frame keeps the time
    it was spoken; only when it arrives changes."""

    clump: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Frames arrive in clumps of this many seconds, all at once when the clump is "
        "complete (a WebSocket client sending 100 ms at a time); 0: frame by frame.",
    )
    jitter: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Each clump arrives up to this many seconds later still (random, seeded, in "
        "order).",
    )


class Defaults(Strict):
    """What every scenario of a file shares unless it says otherwise."""

    voice: str | None = Field(None, max_length=64, description="espeak-ng voice (default en-us).")
    rate: int | None = Field(None, ge=80, le=450, description="Words per minute (default 160).")
    pitch: int | None = Field(None, ge=0, le=99, description="espeak-ng pitch, 0-99 (default 50).")
    line_noise: float | None = Field(
        None, ge=-120, le=-20, description="A noise floor under the whole call, dBFS RMS (none: digital silence)."
    )
    agent: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the agent file (mappings key by key; lists replace)."
    )


class Scenario(Defaults):
    name: str = Field(min_length=1, max_length=200)
    about: str = Field("", description="What this scenario shows, for people.")
    xfail: str | None = Field(
        None,
        min_length=1,
        description="The behaviour is not built yet: why (names the missing feature). The scenario "
        "is expected to fail, and passing is reported as a failure so the mark gets removed.",
    )
    slow: bool = Field(False, description="Uses real models (the test suite marks it slow).")
    echo: Echo | None = None
    delivery: Delivery = Field(Delivery(), description="Late, bursty delivery of the caller's audio.")
    caller: list[CallerEvent] = Field(min_length=1)
    hang_up: Timing = Field(
        Timing(wait=1.0), description="When the caller's line goes quiet for good (default: 1 s after its last move)."
    )
    check_budgets: bool = Field(
        True, description="Fail on any turn over the agent file's latency_budget (false: a scenario that is slow on purpose)."
    )
    max_wait: float = Field(
        30.0, gt=0, le=3600, description="Longest wait for the agent at an anchor before the caller gives up."
    )
    time_limit: float = Field(300.0, gt=0, le=86_400, description="Longest call, virtual seconds.")
    expect: Expect = Field(Expect())

    @model_validator(mode="after")
    def _ids(self) -> Scenario:
        ids = [event.id for event in self.caller if event.id is not None]
        _unique("caller move ids", ids)
        for check in self.expect.checks:
            for field, named in (("yielded.to", check.yielded and check.yielded.to), ("during", check.during)):
                if named is not None and named not in ids:
                    raise ValueError(f"expect: {field} {named!r} is not the id of a caller move")
        return self


class ScenarioFile(Strict):
    defaults: Defaults = Field(Defaults(), description="For every scenario of the file (each may override).")
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ScenarioFile:
        _unique("scenario names", [scenario.name for scenario in self.scenarios])
        return self


def _unique(what: str, names: list[str]) -> None:
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{what} must be unique ({', '.join(twice)} used twice)")
