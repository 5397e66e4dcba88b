"""Latency budgets: the agent file says how long each stage may take, every turn is checked.

A budget turns the timeline from something to read into something that fails: ``voiceflow test``
fails a scenario whose turns miss (:func:`budget_misses`), and a live call logs each miss with the
stage to blame and records it in the turn's timeline (:func:`record_misses`). Checking happens on
the finished timeline, so it costs nothing while the caller waits and needs no hook in the
pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import Field

from voiceflow.config.base import Strict
from voiceflow.metrics.critical_path import critical_shares
from voiceflow.metrics.timeline import SPANS, CallTimeline

log = structlog.get_logger("voiceflow.budget")

UNCHECKED_OUTCOMES = ("discarded", "ignored")
"""Turns nobody waited for: a preemptive reply dropped unheard because the caller went on, and a
caller turn deliberately not answered (music, a hold request's silence)."""


def _budget(what: str) -> Any:
    return Field(None, ge=1, le=60_000, description=f"Longest {what}, milliseconds (unset: unchecked).")


class LatencyBudget(Strict):
    """How long each stage of a turn may take; unset budgets are not checked. A turn over any of
    them is a miss: logged with the stage to blame, recorded in its timeline, a failure in
    `voiceflow test` (see docs/latency.md)."""

    mouth_to_ear_ms: int | None = _budget("wait from the caller's last word to the agent's first sound heard")
    endpointing_ms: int | None = _budget("wait from the caller's last word to the turn judged over")
    stt_ttfb_ms: int | None = _budget("wait for the final transcript once the recogniser is asked for it")
    llm_ttfb_ms: int | None = _budget("wait for the LLM's first token")
    tts_ttfb_ms: int | None = _budget("wait for the voice's first audio")

    def limits(self) -> dict[str, float]:
        """The set budgets as ``{span name: seconds}``, span names as in the timeline."""
        return {
            name.removesuffix("_ms"): value / 1000
            for name, value in self.model_dump().items()
            if value is not None
        }


@dataclass(frozen=True)
class BudgetMiss:
    """One budget one turn went over, and the stage that made it so."""

    turn: int
    span: str
    seconds: float
    budget: float
    blame: str
    """For a stage's own budget, that stage. For mouth-to-ear, the stage whose share of the wait
    (its time on the critical path) went over its own budget by most, else the largest share."""
    blame_seconds: float
    """The blamed stage's share of mouth-to-ear, or its own span for a stage budget."""

    def describe(self) -> str:
        """The miss in words, e.g. "mouth_to_ear 1204 ms over its 900 ms budget; blame endpointing
        (1203 ms of it)"."""
        text = f"{self.span} {_ms(self.seconds)} over its {_ms(self.budget)} budget"
        if self.blame != self.span:
            text += f"; blame {self.blame} ({_ms(self.blame_seconds)} of it)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "span": self.span,
            "ms": round(self.seconds * 1000, 1),
            "budget_ms": round(self.budget * 1000, 1),
            "blame": self.blame,
            "blame_ms": round(self.blame_seconds * 1000, 1),
        }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def turn_misses(index: int, marks: Mapping[str, float], budget: LatencyBudget) -> list[BudgetMiss]:
    """The budgets one turn missed, from its marks (absolute or relative: only differences count,
    so a timeline read back from JSON is checked exactly like a live one)."""
    limits = budget.limits()
    misses: list[BudgetMiss] = []
    for span, limit in limits.items():
        start, end = SPANS[span]
        if start not in marks or end not in marks:
            continue
        seconds = marks[end] - marks[start]
        if seconds <= limit:
            continue
        blame, share = (span, seconds) if span != "mouth_to_ear" else _blame(marks, limits)
        misses.append(BudgetMiss(index, span, seconds, limit, blame, share))
    return misses


def _blame(marks: Mapping[str, float], limits: Mapping[str, float]) -> tuple[str, float]:
    """The stage to blame for a slow mouth-to-ear: the one whose share overran its own budget by
    most, else the one the caller waited on longest."""
    shares = critical_shares(marks)
    overruns = [
        (share - limits[stage], stage) for stage, share in shares.items() if stage in limits and share > limits[stage]
    ]
    if overruns:
        stage = max(overruns)[1]
    else:
        stage = max(shares.items(), key=lambda item: item[1])[0]
    return stage, shares[stage]


def budget_misses(timeline: CallTimeline, budget: LatencyBudget) -> list[BudgetMiss]:
    """Every miss in a call, turn by turn; empty when every turn kept every budget. This is what
    ``voiceflow test`` fails a scenario on."""
    return [
        miss
        for turn in timeline.turns
        if turn.outcome not in UNCHECKED_OUTCOMES
        for miss in turn_misses(turn.index, turn.marks, budget)
    ]


def record_misses(timeline: CallTimeline, budget: LatencyBudget) -> list[BudgetMiss]:
    """Check the call, record each turn's misses in its timeline and log the new ones.

    Safe to call more than once (a partial result, then the whole call): a miss already recorded
    is not logged again.
    """
    misses = budget_misses(timeline, budget)
    for turn in timeline.turns:
        found = [miss for miss in misses if miss.turn == turn.index]
        for miss in found:
            if miss not in turn.budget_misses:
                log.warning(
                    "latency budget missed",
                    turn=miss.turn,
                    span=miss.span,
                    ms=round(miss.seconds * 1000),
                    budget_ms=round(miss.budget * 1000),
                    blame=miss.blame,
                    blame_ms=round(miss.blame_seconds * 1000),
                )
        turn.budget_misses = found
    return misses
