"""A scenario's expectations, checked against what happened in its call.

Each check says what it wanted and what it got, in one line: the report prints them above the
call's timeline. Texts are compared as words (case, punctuation and the "…" of a cut-off reply
ignored), so a check reads like what a person would write.

Preemptive replies dropped unheard (outcome ``discarded``) are left out of the agent's turns: the
caller never knew of them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from voiceflow.frames import FRAME_SECONDS, SAMPLE_RATE
from voiceflow.metrics.budget import budget_misses
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.scenarios.line import AgentSpeech, Move, ScenarioLine
from voiceflow.scenarios.model import Bounds, Expect, TextMatch, TurnCheck
from voiceflow.scenarios.results import Outcome, ScenarioRun
from voiceflow.testing.dtmf_detector import detected

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Substitutions, insertions and deletions from a word alignment, per reference word."""
    matcher = difflib.SequenceMatcher(a=reference, b=hypothesis, autojunk=False)
    errors = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    return errors / max(1, len(reference))


def text_matches(rule: TextMatch, text: str) -> bool:
    said = words(text)
    if rule.exactly is not None:
        return said == words(rule.exactly)
    if rule.contains is not None:
        part = words(rule.contains)
        return any(said[i : i + len(part)] == part for i in range(len(said) - len(part) + 1))
    if rule.matches is not None:
        return re.search(rule.matches, text) is not None
    assert rule.like is not None
    return word_error_rate(words(rule.like), said) <= rule.max_wer


def describe(rule: TextMatch) -> str:
    if rule.exactly is not None:
        return repr(rule.exactly)
    if rule.contains is not None:
        return f"containing {rule.contains!r}"
    if rule.matches is not None:
        return f"matching /{rule.matches}/"
    return f"like {rule.like!r} (word error rate <= {rule.max_wer:g})"


def agent_turns(run: ScenarioRun) -> list[TurnTimeline]:
    if run.result is None:
        return []
    return [turn for turn in run.result.timeline.turns if turn.outcome != "discarded"]


def label(turn: TurnTimeline) -> str:
    return f"{turn.kind}/{turn.outcome}"


def speech_of(line: ScenarioLine, turn: TurnTimeline) -> AgentSpeech | None:
    return next((speech for speech in line.speech if speech.reply.timeline is turn), None)


def cut_offs(line: ScenarioLine) -> list[tuple[AgentSpeech, Move]]:
    """Agent turns whose first audio came while the caller was mid-utterance (after its voice
    began, before it finished): the agent talking into the caller's pause or over their words."""
    found = []
    for speech in line.speech:
        for move in line.moves:
            onset, end = move.onset, move.end
            if move.event.speaks and onset is not None and end is not None and onset < speech.start < end - 1e-6:
                found.append((speech, move))
    return found


def judge(run: ScenarioRun) -> Outcome:
    """The scenario's verdict: its failed checks and its status (xfail taken into account)."""
    failures = check(run)
    reason = run.scenario.xfail
    if run.error is not None:
        return Outcome(run, failures, "error")
    if reason is not None:
        if failures:
            return Outcome(run, failures, "xfailed")
        return Outcome(run, [f"passed, but it is marked xfail ({reason}): remove the mark"], "xpassed")
    return Outcome(run, failures, "failed" if failures else "passed")


def check(run: ScenarioRun) -> list[str]:
    if run.error is not None:
        return [f"could not run: {run.error}"]
    line = run.line
    assert line is not None and run.result is not None
    failures: list[str] = []
    if line.gave_up is not None:
        failures.append(f"the caller {line.gave_up}")
    else:
        for move in line.moves:
            if move.start is None:
                failures.append(f"the call ended ({run.result.ended_because}) before caller move "
                                f"{move.index + 1} ({move.event.action}) could start")
                break
    failures += _call_checks(run, line, run.scenario.expect)
    if run.budget is not None:
        kinds = {turn.index: turn.kind for turn in run.result.timeline.turns}
        failures += [f"latency_budget: {kinds.get(miss.turn, 'turn')} (agent turn {miss.turn + 1}): {miss.describe()}"
                     for miss in budget_misses(run.result.timeline, run.budget)]
    turns = agent_turns(run)
    for turn_check in run.scenario.expect.checks:
        failures += _turn_checks(run, line, turns, turn_check)
    return failures


def _call_checks(run: ScenarioRun, line: ScenarioLine, expect: Expect) -> list[str]:
    failures: list[str] = []
    assert run.result is not None
    if expect.turns is not None:
        actual = [label(turn) for turn in agent_turns(run)]
        wanted = expect.turns
        fits = len(actual) == len(wanted) and all(_fits(got, want) for got, want in zip(actual, wanted, strict=True))
        if not fits:
            failures.append(f"turns: expected {wanted}, got {actual}")
    if expect.cut_offs is not None:
        found = cut_offs(line)
        allowed = expect.cut_offs
        if len(found) != allowed if isinstance(allowed, int) else not _within(len(found), allowed):
            detail = "; ".join(
                f"{speech.reply.kind} began at {speech.start - line.origin:.2f} s, during caller move {move.index + 1}"
                for speech, move in found
            )
            failures.append(f"cut_offs: expected {_shown(allowed)}, got {len(found)}" + (f" ({detail})" if detail else ""))
    if expect.pressed is not None:
        heard = detected(line.tracks()[1], SAMPLE_RATE)
        if heard != expect.pressed:
            failures.append(f"pressed: expected {expect.pressed!r} (keypad tones in the agent's audio), got {heard!r}")
    if expect.ended is not None and not run.result.ended_because.startswith(expect.ended):
        failures.append(f"ended: expected {expect.ended!r}, got {run.result.ended_because!r}")
    return failures


def _within(value: float, bounds: Bounds) -> bool:
    return (bounds.min is None or value >= bounds.min) and (bounds.max is None or value <= bounds.max)


def _shown(wanted: int | Bounds) -> str:
    if isinstance(wanted, int):
        return str(wanted)
    return " and ".join(f"{name} {value:g}" for name, value in (("min", wanted.min), ("max", wanted.max))
                        if value is not None)


def _fits(got: str, want: str) -> bool:
    """Whether turn ``got`` (kind/outcome) is what ``want`` (kind, kind/outcome, any…) asks for."""
    kind, _, outcome = want.partition("/")
    got_kind, _, got_outcome = got.partition("/")
    return kind in ("any", got_kind) and outcome in ("", got_outcome)


def _turn_checks(run: ScenarioRun, line: ScenarioLine, turns: list[TurnTimeline], want: TurnCheck) -> list[str]:
    chosen = [turn for turn in turns if want.turn == "any" or turn.kind == want.turn]
    name = f"{want.turn} {want.n}"
    try:
        turn = chosen[want.n - 1 if want.n > 0 else want.n]
    except IndexError:
        return [f"{name}: there is no such turn (the agent's turns: {[label(t) for t in turns]})"]
    failures: list[str] = []

    def text(field: str, rule: TextMatch | None, value: str) -> None:
        if rule is not None and not text_matches(rule, value):
            failures.append(f"{name}: {field}: expected {describe(rule)}, got {value!r}")

    def notes(field: str, rule: TextMatch | None, values: Iterable[str]) -> None:
        values = list(values)
        if rule is not None and not any(text_matches(rule, value) for value in values):
            failures.append(f"{name}: {field}: expected a note {describe(rule)}, got {values}")

    if want.outcome is not None and turn.outcome != want.outcome:
        failures.append(f"{name}: outcome: expected {want.outcome}, got {turn.outcome}")
    text("caller_said", want.caller_said, turn.user_text)
    text("said", want.said, turn.agent_text)
    text("heard", want.heard, turn.heard_text)
    text("failure", want.failure, turn.failure or "")
    notes("overlap", want.overlap, turn.overlaps)
    notes("endpointing", want.endpointing, turn.endpointing)
    notes("state", want.state, turn.states)
    notes("fallback", want.fallback, turn.fallbacks)
    if want.overlaps is not None and len(turn.overlaps) != want.overlaps:
        failures.append(f"{name}: overlaps: expected {want.overlaps}, got {turn.overlaps}")
    if want.tools is not None and [outcome.tool for outcome in turn.tools] != want.tools:
        failures.append(f"{name}: tools: expected {want.tools}, got {[o.tool for o in turn.tools]}")
    for span, bounds in (want.latency or {}).items():
        value = turn.span(span)
        if value is None:
            failures.append(f"{name}: latency: {span} was not measured for this turn")
        elif not _within(value, bounds):
            failures.append(f"{name}: latency: {span} {value:.3f} s, expected {_shown(bounds)} s")
    if want.yielded is not None:
        failures += _yielded(line, turn, want, name)
    if want.during is not None:
        failures += _during(line, turn, want.during, name)
    if want.context is not None:
        failures += _context(run, line, turn, want.context, name)
    return failures


def _yielded(line: ScenarioLine, turn: TurnTimeline, want: TurnCheck, name: str) -> list[str]:
    assert want.yielded is not None
    move = next(m for m in line.moves if m.event.id == want.yielded.to)
    onset, speech = move.onset, speech_of(line, turn)
    if onset is None:
        return [f"{name}: yielded: caller move {want.yielded.to!r} never sounded"]
    spans = speech.spans() if speech is not None else []
    playing = [end for start, end in spans if start <= onset + FRAME_SECONDS / 2 and end > onset]
    if not playing:
        return [f"{name}: yielded: the agent was not speaking this turn when {want.yielded.to!r} began "
                f"({onset - line.origin:.2f} s)"]
    stop = playing[0] - onset
    if stop > want.yielded.within:
        return [f"{name}: yielded: the agent went on for {stop:.3f} s after {want.yielded.to!r} began, "
                f"expected at most {want.yielded.within:g} s"]
    return []


def _during(line: ScenarioLine, turn: TurnTimeline, move_id: str, name: str) -> list[str]:
    move = next(m for m in line.moves if m.event.id == move_id)
    speech = speech_of(line, turn)
    if speech is None:
        return [f"{name}: during: the caller never heard this turn"]
    if move.start is None or move.end is None or not move.start <= speech.start < move.end:
        where = "never sounded" if move.start is None else (
            f"sounded {move.start - line.origin:.2f}–{(move.end or move.start) - line.origin:.2f} s")
        return [f"{name}: during: began at {speech.start - line.origin:.2f} s; caller move {move_id!r} {where}"]
    return []


def _context(run: ScenarioRun, line: ScenarioLine, turn: TurnTimeline, want: str, name: str) -> list[str]:
    speech = speech_of(line, turn)
    after = speech.end if speech is not None else max(turn.marks.values(), default=line.origin)
    later = [request for request in run.requests if request.t >= after]
    if not later:
        return [f"{name}: context: the LLM was not asked anything after this turn (add a caller move after it)"]
    shown = [m.content for request in later for m in request.messages if m.role == "assistant" and m.content]
    heard, said = words(turn.heard_text), words(turn.agent_text)
    ok = {
        "heard": bool(heard) and any(words(content) == heard for content in shown),
        "said": any(words(content) == said for content in shown),
        "nothing": not any(said[:3] and words(content)[:3] == said[:3] for content in shown),
    }[want]
    if ok:
        return []
    return [f"{name}: context: expected the LLM to be shown {want} "
            f"(heard {turn.heard_text!r}), its next request held {shown[-3:] or 'no agent lines'}"]
