"""The report's figures on the terminal: the percentile table and the budget misses, for a
reader who wants the numbers without opening the page."""

from __future__ import annotations

from voiceflow.report.build import Report
from voiceflow.report.waterfall import ms


def summary_lines(report: Report) -> list[str]:
    turns = sum(len(call.turns) for call in report.calls)
    calls = len(report.calls)
    lines = [f"latency over {turns} turns in {calls} call{'s' if calls != 1 else ''}:"]
    if not report.stats:
        lines.append("  no stage was measured")
    width = max((len(row.label) for row in report.stats), default=0)
    lines += [f"  {'stage'.ljust(width)}  {'turns':>5}  {'p50':>8}  {'p95':>8}  {'max':>8}"] if report.stats else []
    lines += [
        f"  {row.label.ljust(width)}  {row.count:>5}  {ms(row.p50):>8}  {ms(row.p95):>8}  {ms(row.max):>8}"
        for row in report.stats
    ]
    misses = [(call, turn, miss) for call in report.calls for turn in call.turns for miss in turn.budget_misses]
    if misses:
        lines.append(f"latency budget misses: {len(misses)}")
        for call, turn, miss in misses:
            lines.append(f"  {call.name} turn {turn.index}: {miss.describe()}")
    return lines
