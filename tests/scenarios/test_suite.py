"""The scenario suite: every scenario file under tests/scenarios/data (fast, scripted providers)
and agents/scenarios (the real offline agent, slow), one pytest test per scenario.

A scenario marked ``xfail`` in its file is a strict xfail here: it names a behaviour the runtime
does not have yet, and the day it passes the suite says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voiceflow.config.errors import ConfigError
from voiceflow.runtime.pool import ProviderPool
from voiceflow.scenarios import Suite, load_suite, scenario_registry
from voiceflow.scenarios.checks import check
from voiceflow.scenarios.report import describe_outcome
from voiceflow.scenarios.results import Outcome
from voiceflow.scenarios.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SUITES = [(DATA / "agent.yaml", path) for path in sorted(DATA.glob("*.yaml")) if path.name != "agent.yaml"]
SUITES += [(ROOT / "agents/local.yaml", ROOT / "agents/scenarios/local.yaml")]

pytestmark = pytest.mark.anyio


def _suite(agent: Path, scenarios: Path) -> Suite:
    import scenario_tools

    return load_suite(agent, scenarios, scenario_registry([scenario_tools]))


def _cases() -> list[object]:
    cases = []
    for agent, scenarios in SUITES:
        try:
            suite = _suite(agent, scenarios)
        except ConfigError:  # reported by the test itself, not hidden at collection
            cases.append(pytest.param(agent, scenarios, -1, id=f"{scenarios.stem}: the file loads"))
            continue
        for index, scenario in suite.scenarios():
            marks = [pytest.mark.slow] if scenario.slow else []
            if scenario.xfail is not None:
                marks.append(pytest.mark.xfail(strict=True, reason=scenario.xfail))
            cases.append(pytest.param(agent, scenarios, index, marks=marks, id=f"{scenarios.stem}: {scenario.name}"))
    return cases


@pytest.fixture(scope="module")
async def shared() -> AsyncIterator[dict[Path, ProviderPool]]:
    """One pool per agent file for the module: real models load once, as on a server."""
    pools: dict[Path, ProviderPool] = {}
    yield pools
    for pool in pools.values():
        await pool.aclose()


@pytest.mark.parametrize(("agent", "scenarios", "index"), _cases())
async def test_scenario(agent: Path, scenarios: Path, index: int, shared: dict[Path, ProviderPool]) -> None:
    suite = _suite(agent, scenarios)  # raises ConfigError (with file:line) if it cannot load
    scenario = dict(suite.scenarios())[index]
    pool = shared.setdefault(agent, ProviderPool(suite.registry))
    run = await run_scenario(suite.agent_for(index), scenario, pool, suite.registry)
    failures = check(run)
    assert not failures, describe_outcome(Outcome(run, failures, "failed"))
