"""``voiceflow test AGENT SCENARIOS``: run the scenarios, print the verdicts, set the exit status.

Exit status: 0 when every scenario passed (or failed as its ``xfail`` said it would), 1 when any
failed, errored or passed despite its ``xfail``, 2 when the files could not be read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import typer

from voiceflow.config.errors import ConfigError
from voiceflow.scenarios.report import describe_outcome, summary, write_junit
from voiceflow.scenarios.results import Outcome
from voiceflow.scenarios.runner import load_suite, run_suite, scenario_registry


def run_tests(
    agent_file: Path,
    scenario_file: Path,
    plugins: Sequence[object] = (),
    *,
    only: Sequence[str] = (),
    junit: Path | None = None,
    recordings: Path | None = None,
    verbose: bool = False,
) -> int:
    """Run the scenario file against the agent file; returns the exit status."""
    registry = scenario_registry(plugins)
    try:
        suite = load_suite(agent_file, scenario_file, registry)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        return 2
    if not suite.scenarios(only):
        typer.echo(f"{scenario_file}: no scenario's name contains {' or '.join(map(repr, only))}", err=True)
        return 2

    def told(outcome: Outcome) -> None:
        typer.echo(describe_outcome(outcome, timeline=True if verbose else None))

    started = time.perf_counter()
    outcomes = anyio.run(lambda: run_suite(suite, only=only, recordings=recordings, on_outcome=told))
    typer.echo(summary(outcomes, time.perf_counter() - started))
    if junit is not None:
        write_junit(outcomes, junit, scenario_file.stem)
    return 0 if all(outcome.ok for outcome in outcomes) else 1
