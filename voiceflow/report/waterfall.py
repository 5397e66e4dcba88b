"""One turn as a waterfall: a row per stage, each a bar from when it was asked to when it
answered, on a time axis whose zero is the caller's last word.

Zero at the caller's last word makes the first-audio-heard mark read directly as mouth-to-ear,
and lines turns up against each other: what starts left of zero was hidden in the caller's
speech or silence, what ends right of it is what the caller waited for. This module only decides
what to draw, in seconds; :mod:`voiceflow.report.layout` decides where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from voiceflow.metrics.budget import BudgetMiss
from voiceflow.metrics.critical_path import critical_shares
from voiceflow.report.records import TurnRecord
from voiceflow.report.stages import (
    AGENT_COLOR,
    BY_KEY,
    CALLER_COLOR,
    FAINT_COLOR,
    FALLBACK_COLOR,
    INK,
    MISS_COLOR,
    TOOL_COLOR,
)

MAX_LEAD = 1.0
"""Seconds of caller speech drawn before its end: a long question would squeeze the stages that
matter into a sliver. The bar's label keeps the whole duration."""
MAX_TAIL = 0.8
"""Seconds of agent speech drawn after its first sound, for the same reason."""


@dataclass(frozen=True)
class Bar:
    start: float
    end: float
    """Seconds from the waterfall's zero."""
    color: str
    label: str = ""
    """What the bar is, in words (a tooltip on the page; written beside the bar if ``shown``)."""
    shown: bool = False
    cut_start: bool = False
    cut_end: bool = False
    """Drawn shorter than it was (see :data:`MAX_LEAD`, :data:`MAX_TAIL`)."""
    over_budget: bool = False


@dataclass(frozen=True)
class Tick:
    at: float
    label: str
    color: str
    dashed: bool = False


@dataclass(frozen=True)
class Flag:
    """A short warning written after a row (a fallback, a budget miss)."""

    text: str
    color: str


@dataclass
class Row:
    key: str
    label: str
    value: str = ""
    """The row's duration, written beside its label."""
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)


@dataclass
class Waterfall:
    turn: TurnRecord
    zero: float
    """Seconds since the call started at the waterfall's zero."""
    zero_label: str
    rows: list[Row]
    shares: dict[str, float]
    """Mouth-to-ear split into the stages the caller waited on (empty without a caller turn)."""

    @property
    def extent(self) -> tuple[float, float]:
        """The earliest and latest time drawn, in seconds from zero (zero always included)."""
        times = [0.0] + [t for row in self.rows for bar in row.bars for t in (bar.start, bar.end)]
        times += [tick.at for row in self.rows for tick in row.ticks]
        return min(times), max(times)


def ms(seconds: float) -> str:
    """Durations as a person reads them: milliseconds below ten seconds, else seconds."""
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 10 else f"{seconds:.1f} s"


def waterfall(turn: TurnRecord) -> Waterfall:
    marks = turn.marks
    if "user_speech_end" in marks:
        zero, zero_label = marks["user_speech_end"], "caller's last word"
    else:
        zero, zero_label = (min(marks.values()) if marks else 0.0), "turn start"

    def at(name: str) -> float:
        return marks[name] - zero

    rows: list[Row] = []

    def stage_row(key: str, *, extra: list[Bar] | None = None, ticks: list[Tick] | None = None) -> None:
        stage = BY_KEY[key]
        if stage.start not in marks or stage.end not in marks:
            return
        took = ms(marks[stage.end] - marks[stage.start])
        bar = Bar(at(stage.start), at(stage.end), stage.color, f"{stage.label}: {took}")
        rows.append(Row(key, stage.label, took, [bar, *(extra or [])], ticks or []))

    if "user_speech_start" in marks and "user_speech_end" in marks:
        start, spoke = max(at("user_speech_start"), -MAX_LEAD), ms(-at("user_speech_start"))
        rows.append(Row("caller", "caller speech", spoke, [
            Bar(start, 0.0, CALLER_COLOR, f"caller speech: {spoke}", cut_start=start > at("user_speech_start"))
        ]))
    stage_row("endpointing", ticks=[Tick(at(name), label, INK) for name, label in
                                    (("vad_end_detected", "VAD"), ("turn_judged", "judged")) if name in marks])
    stage_row("stt_ttfb")
    generating = ([Bar(at("llm_first_token"), at("llm_done"), FAINT_COLOR, "LLM writing the rest")]
                  if "llm_first_token" in marks and "llm_done" in marks else [])
    stage_row("llm_ttfb", extra=generating)
    stage_row("first_clause")
    if turn.tools:
        rows.append(Row("tools", "tool calls", ms(sum(tool.seconds for tool in turn.tools)), [
            Bar(tool.started - zero, tool.started - zero + tool.seconds, MISS_COLOR if tool.error else TOOL_COLOR,
                tool.tool + (" (failed)" if tool.error else ""), shown=True)
            for tool in turn.tools
        ]))
    stage_row("tts_ttfb")
    rows += _heard(turn, at)
    stage_row("mouth_to_ear")
    _flag_fallbacks(rows, turn.fallbacks)
    for miss in turn.budget_misses:
        _flag_miss(rows, miss, marks, zero)
    return Waterfall(turn, zero, zero_label, rows, critical_shares(marks))


def _heard(turn: TurnRecord, at: Callable[[str], float]) -> list[Row]:
    """The agent's audio as heard (after any hold-back), and the caller cutting it off."""
    marks = turn.marks
    rows: list[Row] = []
    speech_end = None
    if "first_audio_out" in marks:
        row = Row("heard", "agent speech heard", ticks=[Tick(at("first_audio_out"), "first audio heard", AGENT_COLOR)])
        if "tts_first_audio" in marks and at("first_audio_out") > at("tts_first_audio"):
            held = ms(at("first_audio_out") - at("tts_first_audio"))
            row.bars.append(Bar(at("tts_first_audio"), at("first_audio_out"), FAINT_COLOR, f"audio ready, held {held}"))
        end_mark = "interrupted" if "interrupted" in marks else "reply_heard" if "reply_heard" in marks else None
        if end_mark is not None and at(end_mark) > at("first_audio_out"):
            speech_end = min(at(end_mark), at("first_audio_out") + MAX_TAIL)
            row.value = ms(at(end_mark) - at("first_audio_out"))
            row.bars.append(Bar(at("first_audio_out"), speech_end, AGENT_COLOR, f"agent speaks {row.value}",
                                cut_end=speech_end < at(end_mark)))
        rows.append(row)
    if "interrupted" in marks or turn.overlaps:
        row = Row("barge_in", "barge-in / overlaps")
        if "interrupted" in marks:
            cut_in = at("interrupted") if speech_end is None else min(at("interrupted"), speech_end)
            row.value = f"+{ms(at('interrupted'))}"
            row.ticks.append(Tick(cut_in, "caller cut in", MISS_COLOR))
        if turn.overlaps:
            row.flags.append(Flag(f"{len(turn.overlaps)} overlap{'s' if len(turn.overlaps) > 1 else ''} ignored", INK))
        rows.append(row)
    return rows


FALLBACK_ROWS = {"stt": ("stt_ttfb", "STT final"), "llm": ("llm_ttfb", "LLM first token"),
                 "tts": ("tts_ttfb", "TTS first audio")}


def _flag_fallbacks(rows: list[Row], fallbacks: list[str]) -> None:
    """A fallback is written after the stage's row (added, empty, if the stage never answered)."""
    for note in fallbacks:
        stage = note.split("/", 1)[0].split(":", 1)[0].strip()
        if stage not in FALLBACK_ROWS:
            continue
        key, label = FALLBACK_ROWS[stage]
        row = next((row for row in rows if row.key == key), None)
        if row is None:
            row = Row(key, label)
            rows.append(row)
        provider = note.split("/", 1)[1].split(":", 1)[0] if "/" in note.split(":", 1)[0] else stage
        row.flags.append(Flag(f"{provider} failed", FALLBACK_COLOR))


BLAME_ROWS = {"playout": "heard"}
"""Critical-path stages drawn in a row of another name."""


def _flag_miss(rows: list[Row], miss: BudgetMiss, marks: dict[str, float], zero: float) -> None:
    """The missed stage's bar turns red-edged, with its budget drawn where the stage should have
    ended; the blamed stage says so."""
    for row in rows:
        if row.key == miss.span:
            row.bars = [replace(bar, over_budget=True) if i == 0 else bar for i, bar in enumerate(row.bars)]
            stage = BY_KEY.get(miss.span)
            if stage is not None and stage.start in marks:
                row.ticks.append(Tick(marks[stage.start] - zero + miss.budget, f"budget {ms(miss.budget)}",
                                      MISS_COLOR, dashed=True))
            row.flags.append(Flag(f"over budget +{ms(miss.seconds - miss.budget)}", MISS_COLOR))
        if row.key == BLAME_ROWS.get(miss.blame, miss.blame) and miss.blame != miss.span:
            row.flags.append(Flag("to blame", MISS_COLOR))
