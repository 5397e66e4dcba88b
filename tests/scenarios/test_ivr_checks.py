"""The scenario language's `pressed` check and the report of a menu, on real calls: the check
hears keys in the agent's audio (it fails when the agent pressed another key, or none), and the
report says what the menu offered and what the agent did."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceflow.scenarios import Outcome, load_suite, run_suite, scenario_registry
from voiceflow.scenarios.report import describe_outcome

pytestmark = pytest.mark.anyio

AGENT = Path(__file__).resolve().parent / "data" / "agent.yaml"

SCENARIO = """
scenarios:
  - name: menu
    agent:
      prompt: {{greeting: null}}
      unhappy_paths: {{ivr: {{choose: [support]}}}}
    caller:
      - say: For sales, press one. For support, press two.
    hang_up: {{after: agent_done, turn: keys, wait: 1.0}}
    expect:
      pressed: "{pressed}"
"""


async def run(tmp_path: Path, pressed: str) -> Outcome:
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIO.format(pressed=pressed))
    [outcome] = await run_suite(load_suite(AGENT, path, scenario_registry()))
    return outcome


async def test_the_key_heard_passes(tmp_path: Path) -> None:
    outcome = await run(tmp_path, "2")
    assert outcome.status == "passed", describe_outcome(outcome)


@pytest.mark.parametrize("pressed", ["1", "22", ""])
async def test_another_key_or_none_fails_the_check(tmp_path: Path, pressed: str) -> None:
    outcome = await run(tmp_path, pressed)
    assert outcome.failures == [f"pressed: expected {pressed!r} (keypad tones in the agent's audio), got '2'"]
    assert "recorded menu (options: sales=1, support=2): pressed 2 for 'support'" in describe_outcome(outcome)
