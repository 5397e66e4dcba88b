"""p50/p95 per stage across the turns of a call, or of many calls.

One slow turn hides in an average; percentiles show both the usual turn (p50) and the one in
twenty a caller will remember (p95). Every turn that measured a stage counts for it, whatever its
outcome: an interrupted reply's LLM was as slow as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voiceflow.report.records import CallRecord
from voiceflow.report.stages import STAGES, span_of


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks: the sorted
    values sit at ranks 0..n-1 and rank ``q/100 * (n-1)`` is read between its neighbours (the
    "inclusive" definition of spreadsheets and numpy's default), so p50 of an even count is the
    mean of the middle two and p95 of five values is near, not at, the largest."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class StageStats:
    key: str
    label: str
    count: int
    p50: float
    p95: float
    max: float
    """Seconds, like the timeline."""


def stage_stats(calls: Iterable[CallRecord]) -> list[StageStats]:
    """Per stage, in the order a turn goes through them: the stages no turn measured are left out."""
    turns = [turn for call in calls for turn in call.turns]
    table: list[StageStats] = []
    for stage in STAGES:
        values = [value for turn in turns if (value := span_of(stage.key, turn.marks)) is not None]
        if values:
            table.append(StageStats(stage.key, stage.label, len(values), percentile(values, 50),
                                    percentile(values, 95), max(values)))
    return table
