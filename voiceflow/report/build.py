"""From timelines to files: the HTML page, the PNG beside it, the figures for the terminal.

The one entry point both `voiceflow report` and `voiceflow run --report` call, so a report of a
call just run and of its JSON file afterwards are made the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voiceflow.metrics.budget import UNCHECKED_OUTCOMES, LatencyBudget, turn_misses
from voiceflow.report.layout import Scale, heading_scene, stats_scene, turn_scene
from voiceflow.report.page import render_page
from voiceflow.report.records import CallRecord
from voiceflow.report.scene import Scene, stack
from voiceflow.report.stats import StageStats, stage_stats
from voiceflow.report.waterfall import Waterfall, waterfall

PICTURE_MAX_TURNS = 40
"""Turns drawn in the PNG at most: about 12,000 pixels high, 40 MB while drawing."""


@dataclass
class Report:
    calls: list[CallRecord]
    stats: list[StageStats]
    waterfalls: list[list[Waterfall]]
    scale: Scale

    def html(self) -> str:
        return render_page(self.calls, self.waterfalls, self.stats, self.scale)

    def picture(self, max_turns: int = PICTURE_MAX_TURNS) -> Scene:
        """What the page draws, one below the other: the table, then each call's turns, up to
        ``max_turns`` of them (a folder of calls would make a picture no viewer opens)."""
        turns = sum(len(call.turns) for call in self.calls)
        scenes = [stats_scene(self.stats, turns, len(self.calls))]
        drawn = 0
        for call, call_waterfalls in zip(self.calls, self.waterfalls, strict=True):
            if drawn >= max_turns:
                break
            scenes.append(heading_scene(f"call {call.call_id}", call.source))
            scenes += [turn_scene(wf, self.scale) for wf in call_waterfalls[: max_turns - drawn]]
            drawn += min(len(call_waterfalls), max_turns - drawn)
        if drawn < turns:
            scenes.append(heading_scene(f"{turns - drawn} more turns are in the HTML page"))
        return stack(scenes, gap=6)


def with_budget(calls: Sequence[CallRecord], budget: LatencyBudget) -> list[CallRecord]:
    """The calls with every turn's misses checked again against ``budget`` (an agent file's), in
    place of those recorded when they ran: for timelines from before a budget was set or changed."""
    for call in calls:
        for turn in call.turns:
            checked = turn.outcome not in UNCHECKED_OUTCOMES
            turn.budget_misses = turn_misses(turn.index, turn.marks, budget) if checked else []
    return list(calls)


def build_report(calls: Sequence[CallRecord]) -> Report:
    waterfalls = [[waterfall(turn) for turn in call.turns] for call in calls]
    return Report(list(calls), stage_stats(calls), waterfalls, Scale([wf for per_call in waterfalls for wf in per_call]))


def write_report(report: Report, html: Path, png: Path | None) -> None:
    """Write the page, and the picture if asked for (:class:`~voiceflow.report.png.PngUnavailable`
    if Pillow is missing: the page is written first, so it is never lost to the picture)."""
    html.write_text(report.html(), encoding="utf-8")
    if png is not None:
        from voiceflow.report.png import write_png

        write_png(report.picture(), png)
