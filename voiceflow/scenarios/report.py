"""Telling people what happened: a verdict per scenario, and for a failure, who spoke when.

A failed check alone rarely says why ("expected 1 reply, got 2"); the call's story does. For a
failure the report lists, in time order, each caller move, each agent turn (what it said and what
was heard of it, how it ended, what talked over it), where the caller's turns were judged over
and where the agent was cut off, then draws the call as lanes, one column per step of time::

    caller |    ######  #####            ###
    agent  |=====           =========       ===
    marks  |               e        x
           0         1         2         3 s

``#`` the caller's voice (``~`` noise, a cough, music), ``=`` the agent audible, ``e`` a caller
turn judged over, ``x`` the agent cut off. ``--junit`` writes the same, per scenario, for CI.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voiceflow.frames import SAMPLE_RATE
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.scenarios.checks import agent_turns, speech_of
from voiceflow.scenarios.line import Move, ScenarioLine
from voiceflow.scenarios.results import Outcome

HEADS = {"passed": "PASS", "failed": "FAIL", "xfailed": "XFAIL", "xpassed": "XPASS", "error": "ERROR"}
WIDTH = 100
"""Most columns a lane chart uses."""
STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def verdict_line(outcome: Outcome) -> str:
    run = outcome.run
    seconds = ""
    if run.result is not None and run.line is not None:
        seconds = f"  ({_call_seconds(run.line):.1f} s call, {run.wall_seconds:.1f} s to run)"
    head = f"{HEADS[outcome.status]:<5} {run.scenario.name}{seconds}"
    if outcome.status == "xfailed":
        head += f"\n      expected to fail: {run.scenario.xfail}"
    return head


def describe_outcome(outcome: Outcome, *, timeline: bool | None = None) -> str:
    """The verdict, then (for a failure, or when asked) the failed checks and the call's story."""
    lines = [verdict_line(outcome)]
    show = outcome.status in ("failed", "xpassed", "error") if timeline is None else timeline
    if not show:
        return lines[0]
    lines += [f"  ✗ {failure}" for failure in outcome.failures]
    run = outcome.run
    if run.problems:
        lines += [f"  ! not prepared: {problem}" for problem in run.problems]
    if run.line is not None and run.result is not None:
        lines.append(f"  what happened (seconds from the call's start; it ended: {run.result.ended_because}):")
        lines += [f"    {entry}" for entry in story(outcome)]
        lines += [f"    {row}" for row in lanes(outcome)]
    return "\n".join(lines)


def summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    counts = {status: sum(o.status == status for o in outcomes) for status in HEADS}
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    return f"{', '.join(parts) or 'no scenarios'} in {seconds:.1f} s"


def _call_seconds(line: ScenarioLine) -> float:
    return max(line.caller_track.length, line.agent_track.length) / SAMPLE_RATE


def _quote(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def story(outcome: Outcome) -> list[str]:
    """Everything that happened, in time order, one line each (times from the call's start)."""
    run = outcome.run
    line, result = run.line, run.result
    assert line is not None and result is not None
    zero = result.timeline.origin
    entries: list[tuple[float, str]] = []
    for move in line.moves:
        entries.append(_move_entry(move, zero))
    for index, turn in enumerate(agent_turns(run)):
        entries += _turn_entries(line, turn, index + 1, zero)
    if line.gave_up:
        entries.append((math.inf, f"{'':>11}  caller {line.gave_up}"))
    return [text for _, text in sorted(entries, key=lambda entry: entry[0])]


def _move_entry(move: Move, zero: float) -> tuple[float, str]:
    event = move.event
    name = f"caller {move.index + 1}" + (f" ({event.id})" if event.id else "")
    if event.say is not None:
        what = "say " + " … ".join(_quote(p) if isinstance(p, str) else f"[{p:g} s pause]" for p in event.say)
    elif event.audio is not None:
        what = f"audio {event.audio.name}" + (f" {_quote(event.text)}" if event.text else "")
    elif event.press is not None:
        what = f"press {event.press!r}"
    else:
        what = f"{event.action} {getattr(event, event.action):g} s"
    if event.gain:
        what += f" ({event.gain:+g} dB)"
    if move.start is None:
        return math.inf, f"{'never':>11}  {name}: {what} (the call ended first)"
    end = move.end if move.end is not None else move.start
    cut = "" if move.finished else " (cut short: the call ended)"
    return move.start - zero, f"{move.start - zero:5.2f}–{end - zero:5.2f}  {name}: {what}{cut}"


def _turn_entries(line: ScenarioLine, turn: TurnTimeline, number: int, zero: float) -> list[tuple[float, str]]:
    entries: list[tuple[float, str]] = []
    if "endpoint" in turn.marks and turn.user_text:
        t = turn.marks["endpoint"]
        span = turn.span("endpointing")
        after = f" ({span:.2f} s after the voice stopped)" if span is not None else ""
        notes = f" [{'; '.join(turn.endpointing)}]" if turn.endpointing else ""
        entries.append((t - zero, f"{t - zero:5.2f}        turn end: the caller's turn judged over{after}: "
                                  f"{_quote(turn.user_text)}{notes}"))
    speech = speech_of(line, turn)
    head = f"agent {number} {turn.kind} {turn.outcome}"
    said = f"said {_quote(turn.agent_text)}" if turn.agent_text else "said nothing"
    if turn.heard_text != turn.agent_text:
        said += f", heard {_quote(turn.heard_text)}" if turn.heard_text else ", none of it heard"
    if speech is not None:
        spans = speech.spans()
        when = f"{speech.start - zero:5.2f}–{speech.end - zero:5.2f}"
        paused = f" ({len(spans) - 1} gap{'s' * (len(spans) > 2)} in its audio)" if len(spans) > 1 else ""
        m2e = turn.mouth_to_ear
        latency = f", mouth-to-ear {m2e:.2f} s" if m2e is not None else ""
        entries.append((speech.start - zero, f"{when}  {head}: {said}{paused}{latency}"))
    else:
        t = turn.marks.get("endpoint", turn.marks.get("llm_request", min(turn.marks.values(), default=zero)))
        entries.append((t - zero, f"{t - zero:5.2f}        {head} (never audible): {said}"))
    base = entries[-1][0]
    details = [f"over it: {note}" for note in turn.overlaps]
    details += [f"state: {state}" for state in turn.states]
    details += [f"tool {o.tool}: {'failed: ' + o.error if o.error else 'ok'}" for o in turn.tools]
    details += [f"failure: {turn.failure}"] if turn.failure else []
    details += [f"fallback: {fallback}" for fallback in turn.fallbacks]
    details += [turn.ivr.describe()] if turn.ivr is not None else []
    entries += [(base, f"{'':>11}    {detail}") for detail in details]
    if "interrupted" in turn.marks:
        t = turn.marks["interrupted"]
        entries.append((t - zero, f"{t - zero:5.2f}        barge-in: agent {number} cut off"))
    return entries


def lanes(outcome: Outcome) -> list[str]:
    """The call drawn as lanes (see the module's docstring)."""
    run = outcome.run
    line, result = run.line, run.result
    assert line is not None and result is not None
    zero = result.timeline.origin
    length = _call_seconds(line) + (line.origin - zero)
    step = next((s for s in STEPS if length / s <= WIDTH), STEPS[-1])
    columns = max(1, min(WIDTH, math.ceil(length / step)))
    caller, agent, marks = [" "] * columns, [" "] * columns, [" "] * columns

    def put(row: list[str], t: float, char: str) -> None:
        column = int((t - zero) / step)
        if 0 <= column < columns:
            row[column] = char

    for move in line.moves:
        if move.start is None:
            continue
        char = "#" if move.event.speaks else "~"
        samples = np.abs(move.clip.samples.astype(np.int32))
        loud = max(1, int(samples.max(initial=0)) // 10) if len(samples) else 1
        hop = max(1, round(step * SAMPLE_RATE))
        played = len(samples) if move.end is None else min(len(samples), round((move.end - move.start) * SAMPLE_RATE))
        for at in range(0, played, hop):
            if samples[at : at + hop].max(initial=0) >= loud:
                put(caller, move.start + at / SAMPLE_RATE, char)
    for speech in line.speech:
        for start, end in speech.spans():
            t = start
            while t < end:
                put(agent, t, "=")
                t += step
    for turn in agent_turns(run):
        if "endpoint" in turn.marks and turn.user_text:
            put(marks, turn.marks["endpoint"], "e")
        if "interrupted" in turn.marks:
            put(marks, turn.marks["interrupted"], "x")
    axis = _axis(columns, step)
    return [
        f"caller |{''.join(caller)}",
        f"agent  |{''.join(agent)}",
        f"marks  |{''.join(marks)}",
        f"        {axis}",
        f"        ({step:g} s a column; # caller, ~ noise, = agent, e turn end, x cut off)",
    ]


def _axis(columns: int, step: float) -> str:
    """Seconds under the lanes, as often as their labels fit."""
    width = len(str(int(columns * step))) + 1
    every = next((n for n in (1, 2, 5, 10, 30, 60, 120, 300, 600) if n / step >= width), 3600)
    axis = [" "] * columns
    for second in range(0, int(columns * step) + 1, every):
        label, column = str(second), round(second / step)
        if column + len(label) <= columns:
            axis[column : column + len(label)] = label
    return "".join(axis)


def write_junit(outcomes: Sequence[Outcome], path: Path, suite_name: str) -> None:
    """A JUnit XML file for CI: one test case per scenario; an xfail is a skipped case."""
    failed = sum(o.status in ("failed", "xpassed") for o in outcomes)
    errors = sum(o.status == "error" for o in outcomes)
    skipped = sum(o.status == "xfailed" for o in outcomes)
    total = sum(o.run.wall_seconds for o in outcomes)
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(outcomes)), failures=str(failed),
                       errors=str(errors), skipped=str(skipped), time=f"{total:.3f}")
    for outcome in outcomes:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=outcome.run.scenario.name,
                             time=f"{outcome.run.wall_seconds:.3f}")
        first = outcome.failures[0] if outcome.failures else ""
        if outcome.status in ("failed", "xpassed"):
            ET.SubElement(case, "failure", message=first).text = describe_outcome(outcome, timeline=True)
        elif outcome.status == "error":
            ET.SubElement(case, "error", message=first).text = describe_outcome(outcome, timeline=True)
        elif outcome.status == "xfailed":
            ET.SubElement(case, "skipped", message=f"xfail: {outcome.run.scenario.xfail}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
