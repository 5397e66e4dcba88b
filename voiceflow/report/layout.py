"""Where everything goes: waterfalls, headings and the percentile table as pixel shapes.

Every turn of a report shares one time scale, so bars can be compared by eye from turn to turn
(the point of a picture); a label column on the left carries each row's name and duration, so no
text ever has to fit inside a bar; warnings sit in their own column on the right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from voiceflow.report.records import TurnRecord
from voiceflow.report.scene import Line, Rect, Scene, Shape, Text
from voiceflow.report.stages import GRID, INK, MISS_COLOR, SHARE_LABELS
from voiceflow.report.stats import StageStats
from voiceflow.report.waterfall import Flag, Row, Waterfall, ms

WIDTH = 1100
NAME_X, VALUE_X = 12, 205
"""The label column: a row's name from the left, its duration right-aligned."""
PLOT_LEFT, PLOT_RIGHT = 220, 830
FLAG_X = 842
FLAG_CHARS = 42
"""What fits in the flag column at 10 px in a browser's sans-serif (wider than Pillow's font)."""
HEADER = 48
AXIS = 18
ROW = 24
BAR = 10
"""Each row: a line of small tick labels on top, the bar below it."""
FOOTER = 26
MUTED = "#5b6875"
STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


class Scale:
    """Seconds to pixels, the same for every turn of a report; grid lines at round steps."""

    def __init__(self, waterfalls: Sequence[Waterfall]) -> None:
        extents = [wf.extent for wf in waterfalls] or [(0.0, 1.0)]
        low, high = min(e[0] for e in extents), max(e[1] for e in extents)
        self.step = next((s for s in STEPS if (high - low) / s <= 12), STEPS[-1])
        self.low = math.floor(low / self.step) * self.step
        self.high = max(math.ceil(high / self.step) * self.step, self.low + self.step)

    def x(self, seconds: float) -> float:
        return PLOT_LEFT + (seconds - self.low) / (self.high - self.low) * (PLOT_RIGHT - PLOT_LEFT)

    def gridlines(self) -> list[float]:
        count = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]


def clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def turn_title(turn: TurnRecord) -> str:
    parts = [f"turn {turn.index}", turn.kind]
    if turn.outcome:
        parts.append(turn.outcome)
    if "user_speech_end" in turn.marks and "first_audio_out" in turn.marks:
        parts.append(f"mouth-to-ear {ms(turn.marks['first_audio_out'] - turn.marks['user_speech_end'])}")
    return " · ".join(parts)


def turn_words(turn: TurnRecord) -> str:
    said = turn.heard_text or turn.agent_text
    caller = f"caller: “{clip(turn.user_text, 60)}”  " if turn.user_text else ""
    return f"{caller}agent: “{clip(said, 80)}”" if said else caller.strip()


def shares_line(shares: dict[str, float]) -> str:
    waited = [f"{SHARE_LABELS.get(stage, stage)} {ms(seconds)}" for stage, seconds in shares.items()
              if seconds >= 0.0005]
    return "the caller waited on: " + " · ".join(waited) if waited else ""


def turn_scene(wf: Waterfall, scale: Scale) -> Scene:
    rows_top = HEADER + AXIS
    rows_bottom = rows_top + ROW * max(1, len(wf.rows))
    shapes: list[Shape] = [
        Text(NAME_X, 18, turn_title(wf.turn), INK, 13, bold=True),
        Text(NAME_X, 36, turn_words(wf.turn), MUTED, 11),
        Text(NAME_X, rows_top - 5, f"ms from {wf.zero_label}", MUTED, 10),
    ]
    for t in scale.gridlines():
        x = scale.x(t)
        shapes.append(Line(x, rows_top - 2, x, rows_bottom, GRID))
        shapes.append(Text(x, rows_top - 5, "0" if abs(t) < 1e-9 else f"{t * 1000:+.0f}", MUTED, 10, "middle"))
    shapes.append(Line(scale.x(0.0), rows_top - 2, scale.x(0.0), rows_bottom, INK, dashed=True))
    for i, row in enumerate(wf.rows):
        shapes += row_shapes(row, rows_top + i * ROW, scale)
    if not wf.rows:
        shapes.append(Text(PLOT_LEFT, rows_top + 14, "no stage was measured in this turn", MUTED, 11))
    footer = shares_line(wf.shares)
    if footer:
        shapes.append(Text(NAME_X, rows_bottom + 17, footer, INK, 11))
    return Scene(WIDTH, rows_bottom + (FOOTER if footer else 8), shapes)


def row_shapes(row: Row, top: float, scale: Scale) -> list[Shape]:
    bar_top = top + ROW - BAR - 4
    middle = bar_top + BAR / 2
    shapes: list[Shape] = [
        Text(NAME_X, middle + 4, row.label, INK, 11),
        Text(VALUE_X, middle + 4, row.value, INK, 11, "end"),
    ]
    for bar in row.bars:
        x1, x2 = scale.x(bar.start), scale.x(bar.end)
        width = max(x2 - x1, 1.5)
        shapes.append(Rect(x1, bar_top, width, BAR, bar.color, MISS_COLOR if bar.over_budget else None,
                           bar.label))
        for cut, x in ((bar.cut_start, x1 + 4), (bar.cut_end, x1 + width - 6)):
            if cut:
                shapes.append(Line(x, bar_top - 1, x + 2, bar_top + BAR + 1, "#ffffff", 2))
        if bar.shown:
            shapes.append(Text(x1 + width + 4, middle + 4, bar.label, INK, 10))
    for tick in row.ticks:
        x = scale.x(tick.at)
        shapes.append(Line(x, top + 1, x, top + ROW - 1, tick.color, 2 if not tick.dashed else 1.5, tick.dashed))
        shapes.append(Text(x + 3, bar_top - 2, tick.label, tick.color, 9))
    if row.flags:
        flags = sorted(row.flags, key=_urgency)
        text = " · ".join(flag.text for flag in flags)
        shapes.append(Text(FLAG_X, middle + 4, clip(text, FLAG_CHARS), flags[0].color, 10, bold=True))
    return shapes


def _urgency(flag: Flag) -> tuple[bool, bool]:
    """Misses first (the row's flags are then written in red), its own before a blame."""
    return flag.color != MISS_COLOR, not flag.text.startswith("over budget")


def heading_scene(title: str, subtitle: str = "") -> Scene:
    shapes: list[Shape] = [Text(NAME_X, 24, title, INK, 16, bold=True)]
    if subtitle:
        shapes.append(Text(NAME_X, 44, clip(subtitle, 150), MUTED, 11))
    shapes.append(Line(NAME_X, 54, WIDTH - NAME_X, 54, GRID))
    return Scene(WIDTH, 60, shapes)


def stats_scene(stats: Sequence[StageStats], turns: int, calls: int) -> Scene:
    """The percentile table, for the picture (the page has it as an HTML table)."""
    top = 20
    shapes: list[Shape] = [
        Text(NAME_X, top, f"per stage over {turns} turns in {calls} call{'s' if calls != 1 else ''}", INK, 13,
             bold=True),
    ]
    columns = (("turns", 290), ("p50", 380), ("p95", 470), ("max", 560))
    y = top + 22
    for name, x in columns:
        shapes.append(Text(x, y, name, MUTED, 11, "end"))
    for row in stats:
        y += 18
        shapes.append(Text(NAME_X, y, row.label, INK, 11))
        for (_, x), value in zip(columns, (str(row.count), ms(row.p50), ms(row.p95), ms(row.max)), strict=True):
            shapes.append(Text(x, y, value, INK, 11, "end"))
    return Scene(WIDTH, y + 14, shapes)
