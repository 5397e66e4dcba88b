"""`voiceflow report` and `voiceflow run --report`: what they print and write, apart from option
parsing (which stays in :mod:`voiceflow.cli`), so both share one way to make and announce a report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from voiceflow.metrics.budget import LatencyBudget
from voiceflow.report.build import build_report, with_budget, write_report
from voiceflow.report.png import INSTALL_HINT, PngUnavailable
from voiceflow.report.records import CallRecord, TimelineError, call_from_dict, read_calls
from voiceflow.report.text import summary_lines

Echo = Callable[[str, bool], None]
"""Prints a line; the flag sends it to stderr."""


def picture_path(html: Path) -> Path:
    """The PNG beside the page: ``report.html`` → ``report.png``."""
    return html.with_suffix(".png")


def pillow_missing() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return True
    return False


def publish(calls: Sequence[CallRecord], html: Path, png: Path | None, echo: Echo, *,
            png_required: bool = False) -> int:
    """Write the report of ``calls`` and print its figures; the exit code (0, or 2 if a file
    could not be written). Without Pillow the page is still written and the picture skipped with
    a note, unless the picture was asked for by name (``png_required``)."""
    if png is not None and pillow_missing():
        if png_required:
            echo(f"--png: {INSTALL_HINT}", True)
            return 2
        echo(f"picture skipped: {INSTALL_HINT}", True)
        png = None
    report = build_report(calls)
    try:
        write_report(report, html, png)
    except OSError as exc:
        echo(f"cannot write the report: {exc.filename or html}: {exc.strerror or exc}", True)
        return 2
    except PngUnavailable as exc:  # Pillow disappeared between the check and the drawing
        echo(f"picture skipped: {exc}", True)
        png = None
    for line in summary_lines(report):
        echo(line, False)
    echo(f"report:  {html}" + (f"\npicture: {png}" if png is not None else ""), False)
    return 0


def report_files(paths: Sequence[Path], html: Path, png: Path | None, echo: Echo, *,
                 budget: LatencyBudget | None = None, png_required: bool = False) -> int:
    """`voiceflow report`: timelines from files and folders; ``budget`` (from an agent file)
    replaces the misses recorded in them."""
    try:
        calls, skipped = read_calls(paths)
    except TimelineError as exc:
        echo(str(exc), True)
        return 2
    for reason in skipped:
        echo(f"skipped {reason}", True)
    inputs = {Path(call.source).resolve() for call in calls}
    for label, out in (("--output", html), ("--png", png)):
        if out is not None and out.resolve() in inputs:
            echo(f"{label}: {out} is one of the timelines being read; give another name", True)
            return 2
    if budget is not None:
        calls = with_budget(calls, budget)
    return publish(calls, html, png, echo, png_required=png_required)


def report_call(timeline: dict[str, Any], html: Path, echo: Echo) -> int:
    """`voiceflow run --report`: the call just run, from its timeline's ``as_dict`` form."""
    call = call_from_dict(timeline, str(timeline.get("call_id", "call")))
    return publish([call], html, picture_path(html), echo)
