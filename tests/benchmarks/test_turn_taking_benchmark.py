"""benchmarks/turn_taking.py: its figures, taken from a tiny suite whose every call was checked by hand.

The suite (tiny_suite.yaml) holds one of each thing the benchmark counts; the expectations below
were read off each call's timeline and the caller's script (where its voice was, where the
agent's audio reached it), so a figure computed wrong fails here, not only in a report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from voiceflow.scenarios import load_suite, scenario_registry

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import turn_taking  # noqa: E402 - the benchmark script, as a module

pytestmark = pytest.mark.anyio

AGENT = ROOT / "tests/scenarios/data/agent.yaml"
TINY = Path(__file__).resolve().parent / "tiny_suite.yaml"


async def test_the_figures_of_the_tiny_suite() -> None:
    suite = turn_taking.with_turn_detection(load_suite(AGENT, TINY, scenario_registry()), None)
    figures = await turn_taking.run_figures(suite)
    assert (figures.scenarios, figures.xfail_scenarios, figures.errors) == (6, 1, [])
    counted = {kind: figures.count(kind) for kind in (
        "utterance", "cut_off", "cut_off_pause", "false_endpoint", "barge_in", "missed_barge_in",
        "backchannel", "backchannel_interruption", "noise", "noise_interruption", "unjudged")}
    assert counted == {
        # the question, the pizza order (one utterance with its pause), two per interruption
        # scenario, the first line of the backchannel and noise scenarios ("mhm, yeah" over the
        # agent is not a turn)
        "utterance": 8,
        "cut_off": 1,  # the reply to "I would like a pizza and", heard in the 0.9 s pause
        "cut_off_pause": 1,
        "false_endpoint": 1,  # the same turn, judged over in that pause
        "barge_in": 2,  # "And what about tomorrow's weather?" over the long reply, twice
        "missed_barge_in": 1,  # ... once with barge-in turned off (the xfail scenario)
        "backchannel": 1,
        "backchannel_interruption": 0,  # "Mhm, yeah." paused the agent, which played on
        "noise": 1,
        "noise_interruption": 1,  # a second of loud noise is voice to the energy detector
        "unjudged": 0,
    }
    xfailed = {e.kind for e in figures.events if e.xfail}
    assert figures.count("missed_barge_in", xfail_only=True) == 1 and "cut_off" not in xfailed
    assert {e.scenario for e in figures.events if e.kind == "cut_off"} == {"the silence rule answers into the pause"}

    # End of speech -> judged over: the silence rule's 0.45 s (0.3 s after a complete question)
    # from the detector's end of speech, itself a frame or two from the script's last voice; the
    # question over a line that cannot be interrupted is judged only when the reply has finished.
    delays = {(e.scenario, round(e.at, 1)): e.value for e in figures.events if e.kind == "endpointing"}
    assert len(delays) == 8
    slow = [value for (name, _), value in delays.items() if name == "an interruption the agent does not take"]
    assert sorted(v for v in slow if v is not None)[-1] > 5.0
    quick = [v for (name, _), v in delays.items() if name != "an interruption the agent does not take"]
    assert all(v is not None and 0.28 <= v <= 0.55 for v in quick), delays
    [question] = [v for (name, _), v in delays.items() if name == "a question"]
    assert question is not None and question < 0.4  # the complete-question rule's 0.3 s

    # Caller onset -> the agent's audio stops at the caller's ear: it pauses on the voice.
    [stop] = figures.values("stop_time")
    assert 0 < stop <= 0.15
    assert figures.percentile("stop_time", 50) == stop


def _suite_data(agent: dict[str, Any], scenarios: dict[str, Any]) -> Any:
    from voiceflow.scenarios.loading import YamlFile

    suite = load_suite(AGENT, TINY, scenario_registry())
    return turn_taking.dataclasses.replace(
        suite, agent=YamlFile(suite.agent.path, agent, suite.agent.source),
        file=YamlFile(suite.file.path, scenarios, suite.file.source))


def test_the_model_is_set_or_removed_wherever_the_files_put_it() -> None:
    scripted = [{"provider": "scripted-turn", "verdicts": [0.1]}]
    suite = _suite_data(
        {"name": "a", "turn_detection": scripted},
        {"defaults": {"agent": {"turn_detection": scripted}},
         "scenarios": [{"name": "x", "agent": {"turn_detection": scripted, "vad": []}}, {"name": "y"}]},
    )
    without = turn_taking.with_turn_detection(suite, None)
    assert "turn_detection" not in without.agent.data
    assert without.file.data == {"defaults": {"agent": {}}, "scenarios": [{"name": "x", "agent": {"vad": []}}, {"name": "y"}]}
    model = [{"provider": "smart-turn"}]
    with_model = turn_taking.with_turn_detection(suite, model)
    assert with_model.agent.data["turn_detection"] == model
    assert "turn_detection" not in with_model.file.data["scenarios"][0]["agent"]
    assert suite.agent.data["turn_detection"] == scripted  # the suite it was made from is untouched
