"""The report as one HTML file: the percentile table, then each call's turns as waterfalls with
what the timeline says about them in words.

Self-contained on purpose: inline CSS and inline SVG, no script, no font or stylesheet to fetch,
so the file can be mailed, attached to a ticket or opened years later offline. It is also
well-formed XML (every element closed, only numeric entities), which keeps it parseable by tools
and by the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from voiceflow.report.layout import Scale, shares_line, turn_scene, turn_title
from voiceflow.report.records import CallRecord, TurnRecord
from voiceflow.report.stages import AGENT_COLOR, CALLER_COLOR, FAINT_COLOR, STAGES, TOOL_COLOR
from voiceflow.report.stats import StageStats
from voiceflow.report.svg import to_svg
from voiceflow.report.waterfall import Waterfall, ms

STYLE = """
body { font-family: DejaVu Sans, Verdana, Arial, sans-serif; color: #1d2733; margin: 24px; max-width: 1140px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 4px; border-bottom: 1px solid #e3e7ec; padding-bottom: 4px; }
.meta, .source { color: #5b6875; font-size: 13px; margin: 0 0 8px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 12px; text-align: right; border-bottom: 1px solid #eef1f4; }
th:first-child, td:first-child { text-align: left; }
.turn { margin: 14px 0 22px; }
.turn svg { display: block; max-width: 100%; height: auto; }
.notes { font-size: 12px; color: #33414f; margin: 4px 0 0 12px; padding-left: 12px; }
.miss { color: #c62828; font-weight: bold; }
.fallback { color: #b85f00; }
.swatch { display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 12px; vertical-align: middle; }
.legend { font-size: 12px; color: #33414f; }
"""


def _list(items: Sequence[tuple[str, str]]) -> str:
    """``(css class, text)`` pairs as a bullet list; nothing for none."""
    if not items:
        return ""
    lines = "".join(f'<li class="{css}">{escape(text)}</li>' if css else f"<li>{escape(text)}</li>"
                    for css, text in items)
    return f'<ul class="notes">{lines}</ul>'


def turn_notes(turn: TurnRecord) -> list[tuple[str, str]]:
    """Everything the timeline says about a turn that a bar cannot: who answered, what failed,
    why the turn ended when it did, what the caller said over the agent."""
    notes: list[tuple[str, str]] = []
    notes += [("miss", f"latency budget: {miss.describe()}") for miss in turn.budget_misses]
    if turn.providers:
        notes.append(("", "providers: " + ", ".join(f"{stage} {name}" for stage, name in turn.providers.items())))
    notes += [("fallback", f"fallback: {note}") for note in turn.fallbacks]
    if turn.failure:
        notes.append(("miss", f"failure: {turn.failure}"))
    notes += [("", f"tool {tool.tool}: {ms(tool.seconds)}" + (f", failed: {tool.error}" if tool.error else ""))
              for tool in turn.tools]
    notes += [("", f"end of turn: {note}") for note in turn.endpointing]
    notes += [("", f"speech over the agent: {note}") for note in turn.overlaps]
    notes += [("", f"state: {note}") for note in turn.states]
    return notes


def stats_table(stats: Sequence[StageStats]) -> str:
    rows = "".join(
        f"<tr><td>{escape(row.label)}</td><td>{row.count}</td><td>{ms(row.p50)}</td><td>{ms(row.p95)}</td>"
        f"<td>{ms(row.max)}</td></tr>"
        for row in stats
    )
    return ('<table id="stats"><thead><tr><th>stage</th><th>turns</th><th>p50</th><th>p95</th><th>max</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def legend() -> str:
    swatches = [(stage.color, stage.label) for stage in STAGES] + [
        (CALLER_COLOR, "caller speech"), (AGENT_COLOR, "agent speech heard"),
        (FAINT_COLOR, "LLM writing on / audio held back"), (TOOL_COLOR, "tool call"),
    ]
    items = "".join(f'<span class="swatch" style="background:{color}"></span>{escape(label)}'
                    for color, label in swatches)
    return (f'<p class="legend">{items}</p><p class="legend">Zero is the caller\'s last word, so the '
            "first-audio-heard mark reads as mouth-to-ear. Bars left of zero were hidden in the caller's "
            "speech; a red edge is a stage over its budget, its dashed line the budget. "
            "See docs/latency.md, \u201cThe report: a waterfall per turn\u201d.</p>")


def render_page(calls: Sequence[CallRecord], waterfalls: Sequence[Sequence[Waterfall]],
                stats: Sequence[StageStats], scale: Scale) -> str:
    """The whole page; ``waterfalls`` holds each call's turns, in order."""
    turns = sum(len(call.turns) for call in calls)
    misses = sum(len(turn.budget_misses) for call in calls for turn in call.turns)
    summary = f"{len(calls)} call{'s' if len(calls) != 1 else ''}, {turns} turns"
    if misses:
        summary += f", {misses} latency budget miss{'es' if misses != 1 else ''}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>voiceflow latency report: {escape(summary)}</title><style>{STYLE}</style></head><body>",
        f'<h1>voiceflow latency report</h1><p class="meta">{escape(summary)}</p>',
        f"<h2>Per stage, p50 and p95</h2>{stats_table(stats)}",
        legend(),
    ]
    for number, (call, call_waterfalls) in enumerate(zip(calls, waterfalls, strict=True)):
        parts.append(f'<section class="call" id="call-{number}"><h2>call {escape(call.call_id)}</h2>'
                     f'<p class="source">{escape(call.source)}</p>{_list([("", note) for note in call.notes])}')
        for wf in call_waterfalls:
            turn = wf.turn
            svg = to_svg(turn_scene(wf, scale), f"{turn_title(turn)}. {shares_line(wf.shares)}")
            parts.append(f'<article class="turn" id="call-{number}-turn-{turn.index}" data-turn="{turn.index}" '
                         f'data-kind="{escape(turn.kind)}">{svg}{_list(turn_notes(turn))}</article>')
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)

