"""Turn-taking over the scenario suites, with and without the end-of-turn model: how often the agent
talks into the caller's pauses, how it takes being talked over, and how long it waits.

    python benchmarks/turn_taking.py [--repeat 3] [--suites fast,corpus,local,corpus-local] [--models without,with]

Each suite runs through the real scenario runner (what ``voiceflow test`` runs), once with every
scenario's agent stripped of ``turn_detection`` and once with ``turn_detection: [{provider:
smart-turn}]`` (the scripted ``scripted-turn`` of a scenario replaced by it too), so the two
columns are the same calls with only the model changed. Suites: ``fast`` (tests/scenarios/data,
scripted providers), ``corpus`` (benchmarks/turn_taking_corpus.yaml: real recordings with pauses,
on the fast suite's agent with Silero: the model hears real voices, the recogniser the script's
words), ``local`` (agents/scenarios/local.yaml on agents/local.yaml: Silero, Whisper, Qwen, Piper),
``corpus-local`` (the corpus on agents/local.yaml: real voices, real words, real compute). All four
by default, about 4 minutes a repeat on a busy 2-core machine.

The figures come from what each call recorded (:func:`voiceflow.scenarios.truth.ground_truth`:
the caller script's exact voice, the agent's audio at the caller's ear, the timeline's marks), not
from the scenarios' verdicts. Times are on the call's clock (virtual: a real model's compute counts
in full). An *utterance* is what the caller means as one turn (one speaking move with its pauses,
or moves scripted back to back; see the truth module).

* **false cut-offs**: agent turns whose first audio reached the caller inside an utterance (after
  its first voice, before its last): the agent began talking while the caller was mid-utterance.
  *Of which begun in a known pause*: those that began in one of the utterance's silences the
  script knows (a pause it inserted, a gap between its stretches of voice). The rest began in a
  pause too short or too quiet for the clip's voice detection (35 dB under its peak, gaps under
  0.1 s joined: a recording's noise floor hides a reader's own short pauses) or over the voice.
* **false endpoints**: times the caller's turn was judged over (``endpoint`` marks) inside an
  utterance, heard or not (a preemptive or slow reply can be dropped before anyone hears it).
* **barge-ins**: utterances (their first move) whose voice began while an interruptible agent turn
  was audible and whose words are not all backchannels (the agent's ``barge_in.backchannels``).
  **missed** when that turn was not interrupted by it: its outcome is not ``interrupted``, or its
  ``interrupted`` mark is not between the caller's onset and :data:`ATTRIBUTION` seconds after the
  caller's last voice.
* **backchannel interruptions**: the same for speech made only of backchannel words, which should
  never interrupt; **noise interruptions** for noise, a cough or music.
* **endpointing delay**: per utterance (backchannels over the agent are not turns and are left
  out), from its last voiced sample (the script's, exact) to the
  first ``endpoint`` mark at or after it and before the caller's next sound. Utterances without
  one (never judged over on their own) are counted as *unjudged*.
* **barge-in stop time**: per barge-in that interrupted, from the caller's first voiced sample to
  the end of the agent audio playing at that moment, at the caller's ear (0 if it was already
  paused).

p50/p95 are numpy's linear-interpolation percentiles over all the values of a run. With
``--repeat N`` each figure is the median of its N runs. Scenarios marked ``xfail`` (known
failures) are in every count; the part they contribute is shown in brackets. The machine's load
average is printed before and after: figures with real models move with it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "scenarios"))  # the tools the fast suite's tools.yaml calls

from voiceflow.scenarios import Suite, load_suite, run_suite, scenario_registry  # noqa: E402
from voiceflow.scenarios.results import Outcome  # noqa: E402
from voiceflow.scenarios.truth import AgentTurn, CallTruth, ground_truth  # noqa: E402
from voiceflow.turns.barge_in import words_of  # noqa: E402

SUITES: dict[str, tuple[Path, list[Path]]] = {
    "fast": (ROOT / "tests/scenarios/data/agent.yaml",
             sorted(p for p in (ROOT / "tests/scenarios/data").glob("*.yaml") if p.name != "agent.yaml")),
    "corpus": (ROOT / "tests/scenarios/data/agent.yaml", [ROOT / "benchmarks/turn_taking_corpus.yaml"]),
    "local": (ROOT / "agents/local.yaml", [ROOT / "agents/scenarios/local.yaml"]),
    "corpus-local": (ROOT / "agents/local.yaml", [ROOT / "benchmarks/turn_taking_corpus.yaml"]),
}
MODELS: dict[str, list[dict[str, Any]] | None] = {"without": None, "with": [{"provider": "smart-turn"}]}

ATTRIBUTION = 1.0
"""Seconds after the caller's last voice within which the agent's stop is still theirs (the
recogniser's words may settle it a little after the voice ends)."""

COUNTS = (
    ("cut_off", "false cut-offs"),
    ("cut_off_pause", "  of which begun in a known pause"),
    ("false_endpoint", "false endpoints (heard or not)"),
    ("missed_barge_in", "missed barge-ins"),
    ("backchannel_interruption", "backchannel interruptions"),
    ("noise_interruption", "noise interruptions"),
    ("unjudged", "utterances never judged over"),
)
OPPORTUNITIES = {"missed_barge_in": "barge_in", "backchannel_interruption": "backchannel",
                 "noise_interruption": "noise", "unjudged": "utterance"}
TIMES = (("endpointing", "endpointing delay"), ("stop_time", "barge-in stop time"))


@dataclass(frozen=True)
class Event:
    """One thing a figure counts (or times), with where it happened, for reading and for tests."""

    kind: str
    scenario: str
    xfail: bool
    at: float
    value: float | None = None


def measure(truth: CallTruth, scenario: str, *, xfail: bool, backchannels: Sequence[str]) -> list[Event]:
    """What one call contributes to the figures (definitions: the module's docstring)."""
    events: list[Event] = []

    def add(kind: str, at: float, value: float | None = None) -> None:
        events.append(Event(kind, scenario, xfail, at, value))

    for turn in truth.turns:
        first = turn.first_heard
        for utterance in truth.utterances:
            if first is not None and utterance.within(first):
                add("cut_off", first)
                if utterance.in_pause(first):
                    add("cut_off_pause", first)
    backchannel_words = {word for phrase in backchannels for word in words_of(phrase)}
    endpoints = truth.endpoints()
    for utterance in truth.utterances:
        said = words_of(utterance.words)
        if said and all(w in backchannel_words for w in said) and _over_the_agent(truth, utterance.onset):
            continue  # "mhm" over the agent is not a turn: nothing to judge over
        add("utterance", utterance.onset)
        for t in endpoints:
            if utterance.within(t):
                add("false_endpoint", t)
        later = [s.onset for s in truth.sounds if s.onset is not None and s.onset >= utterance.end]
        until = min(later, default=float("inf"))
        judged = [t for t in endpoints if utterance.end <= t < until]
        if judged:
            add("endpointing", utterance.end, judged[0] - utterance.end)
        else:
            add("unjudged", utterance.end)

    openers = {utterance.sounds[0].index for utterance in truth.utterances}
    for sound in truth.sounds:
        onset, voice_end = sound.onset, sound.voice_end
        if onset is None or voice_end is None:
            continue
        if sound.speech:
            if sound.index not in openers:
                continue  # the caller going on with their own utterance, not talking over the agent
            said = words_of(sound.words)
            kind = "backchannel" if said and all(w in backchannel_words for w in said) else "barge_in"
        elif sound.action in ("noise", "cough", "music"):
            kind = "noise"
        else:
            continue
        talked_over = _over_the_agent(truth, onset)
        if talked_over is None:
            continue
        add(kind, onset)
        cut = talked_over.marks.get("interrupted")
        stopped = talked_over.outcome == "interrupted" and cut is not None and onset <= cut <= voice_end + ATTRIBUTION
        if kind == "barge_in":
            if stopped:
                add("stop_time", onset, talked_over.stops_after(onset))
            else:
                add("missed_barge_in", onset)
        elif stopped:
            add(f"{kind}_interruption", onset)
    return events


def _over_the_agent(truth: CallTruth, t: float) -> AgentTurn | None:
    """The interruptible agent turn audible at ``t``, if any."""
    return next((turn for turn in truth.turns if turn.interruptible and turn.audible_at(t)), None)


@dataclass
class Figures:
    """One run of one suite with one model setting: its events, and the figures made of them."""

    events: list[Event] = field(default_factory=list)
    scenarios: int = 0
    xfail_scenarios: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """Scenarios that could not run (they count nothing: a figure without them is not comparable)."""

    def count(self, kind: str, *, xfail_only: bool = False) -> int:
        return sum(e.kind == kind and (e.xfail or not xfail_only) for e in self.events)

    def values(self, kind: str) -> list[float]:
        return [e.value for e in self.events if e.kind == kind and e.value is not None]

    def percentile(self, kind: str, q: float) -> float | None:
        values = self.values(kind)
        return float(np.percentile(values, q)) if values else None


def figures_of(outcomes: Sequence[Outcome], backchannels: Sequence[Sequence[str]]) -> Figures:
    """The figures of a suite's outcomes (``backchannels``: each scenario's agent's list)."""
    figures = Figures()
    for outcome, words in zip(outcomes, backchannels, strict=True):
        scenario = outcome.run.scenario
        figures.scenarios += 1
        figures.xfail_scenarios += scenario.xfail is not None
        if outcome.status == "error":
            figures.errors.append(scenario.name)
        truth = ground_truth(outcome.run)
        if truth is not None:
            figures.events += measure(truth, scenario.name, xfail=scenario.xfail is not None, backchannels=words)
    return figures


def with_turn_detection(suite: Suite, chain: list[dict[str, Any]] | None) -> Suite:
    """``suite`` whose every scenario's agent has ``turn_detection`` set to ``chain`` (None: none),
    whatever the agent file, the scenario file's defaults or the scenario said."""
    agent = copy.deepcopy(suite.agent.data)
    scenarios = copy.deepcopy(suite.file.data)
    overlays = [scenarios.get("defaults", {}).get("agent")]
    overlays += [scenario.get("agent") for scenario in scenarios.get("scenarios", [])]
    for data in [agent, *overlays]:
        if isinstance(data, dict):
            data.pop("turn_detection", None)
    if chain is not None:
        agent["turn_detection"] = chain
    return dataclasses.replace(suite, agent=dataclasses.replace(suite.agent, data=agent),
                               file=dataclasses.replace(suite.file, data=scenarios))


def backchannels_of(suite: Suite, only: Sequence[str] = ()) -> list[list[str]]:
    words = []
    for index, _ in suite.scenarios(only):
        try:
            words.append(list(suite.agent_for(index).turn_taking.barge_in.backchannels))
        except Exception:  # noqa: BLE001 - an invalid agent errors in its own scenario
            words.append([])
    return words


async def run_figures(suite: Suite, only: Sequence[str] = ()) -> Figures:
    started = time.perf_counter()
    outcomes = await run_suite(suite, only=only)
    figures = figures_of(outcomes, backchannels_of(suite, only))
    figures.seconds = time.perf_counter() - started
    return figures


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.0f}"


def report(runs: Sequence[Figures]) -> list[str]:
    """One column of the table: each figure, the median of ``runs``."""
    cells = []
    for kind, _ in COUNTS:
        total = _median([float(r.count(kind)) for r in runs])
        xfail = _median([float(r.count(kind, xfail_only=True)) for r in runs])
        cell = f"{total:g}" + (f" [{xfail:g}]" if xfail else "")
        if kind in OPPORTUNITIES:
            cell += f" of {_median([float(r.count(OPPORTUNITIES[kind])) for r in runs]):g}"
        cells.append(cell)
    for kind, _ in TIMES:
        p50 = _median([r.percentile(kind, 50) for r in runs])
        p95 = _median([r.percentile(kind, 95) for r in runs])
        n = _median([float(len(r.values(kind))) for r in runs])
        cells.append(f"{_ms(p50)} / {_ms(p95)} ms (n={n:g})")
    return cells


def table(name: str, columns: Mapping[str, Sequence[Figures]]) -> str:
    runs = next(iter(columns.values()))
    first = runs[0]
    labels = [label for _, label in COUNTS] + [f"{label} p50 / p95" for _, label in TIMES]
    cells = {model: report(runs) for model, runs in columns.items()}
    heads = {model: ("without the model" if model == "without" else "with smart-turn") for model in columns}
    width = max(len(label) for label in labels) + 2
    lines = [f"{name}: {first.scenarios} scenarios ({first.xfail_scenarios} xfail), "
             f"median of {len(runs)} run{'s' * (len(runs) > 1)}"]
    lines.append(" " * width + "".join(f"{heads[m]:<28}" for m in columns))
    for row, label in enumerate(labels):
        lines.append(f"{label:<{width}}" + "".join(f"{cells[m][row]:<28}" for m in columns))
    lines.append(f"{'seconds per run':<{width}}" + "".join(
        f"{statistics.median(r.seconds for r in columns[m]):<28.1f}" for m in columns))
    return "\n".join(lines)


def load(name: str) -> list[Suite]:
    import scenario_tools

    agent, files = SUITES[name]
    registry = scenario_registry([scenario_tools])
    return [load_suite(agent, path, registry) for path in files]


async def main(suites: Sequence[str], models: Sequence[str], repeat: int, only: Sequence[str], verbose: bool) -> None:
    print(f"turn-taking benchmark, {repeat} run(s) each\nbefore: {load_line()}", flush=True)
    for name in suites:
        columns: dict[str, list[Figures]] = {}
        for model in models:
            for attempt in range(repeat):
                merged = Figures()
                for suite in load(name):
                    part = await run_figures(with_turn_detection(suite, MODELS[model]), only)
                    merged.events += part.events
                    merged.scenarios += part.scenarios
                    merged.xfail_scenarios += part.xfail_scenarios
                    merged.seconds += part.seconds
                    merged.errors += part.errors
                columns.setdefault(model, []).append(merged)
                print(f"  {name}, {model} the model, run {attempt + 1}: {merged.seconds:.1f} s; {load_line()}",
                      flush=True)
                if merged.errors:
                    print(f"    could not run ({len(merged.errors)}): {'; '.join(merged.errors)}", flush=True)
                if verbose:
                    for event in merged.events:
                        if event.kind not in ("utterance", "barge_in", "backchannel", "noise"):
                            value = "" if event.value is None else f" {1000 * event.value:.0f} ms"
                            mark = " (xfail)" if event.xfail else ""
                            print(f"    {event.kind:<26}{event.at:7.2f} s{value}  {event.scenario}{mark}")
        print("\n" + table(name, columns) + "\n", flush=True)
    print(f"after: {load_line()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is printed)")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated: {', '.join(SUITES)}")
    parser.add_argument("--models", default="without,with", help="without, with, or both (the end-of-turn model)")
    parser.add_argument("--only", action="append", default=[], help="scenarios whose name contains this")
    parser.add_argument("--verbose", action="store_true", help="list every counted event")
    args = parser.parse_args()
    chosen = [s for s in args.suites.split(",") if s]
    models = [m for m in args.models.split(",") if m]
    unknown = [s for s in chosen if s not in SUITES] + [m for m in models if m not in MODELS]
    if unknown or args.repeat < 1:
        parser.error(f"unknown suite or model {unknown}" if unknown else "--repeat must be at least 1")
    from voiceflow.logging import configure_logging

    configure_logging("console", "critical")  # the unhappy-path scenarios' failures are on purpose
    anyio.run(main, chosen, models, args.repeat, args.only, args.verbose)
