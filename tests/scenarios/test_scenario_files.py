"""Scenario files are checked like agent files: every mistake is one line with file, line, column
and field, in the scenario file or, for an agent override, where the override was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceflow.config.errors import ConfigError
from voiceflow.scenarios import load_suite, scenario_registry

AGENT = Path(__file__).resolve().parent / "data" / "agent.yaml"


def errors(tmp_path: Path, text: str, agent: Path = AGENT) -> list[str]:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    registry = scenario_registry()
    try:
        suite = load_suite(agent, path, registry)
        for index, _ in suite.scenarios():
            suite.agent_for(index)
    except ConfigError as exc:
        return [str(issue) for issue in exc.issues]
    return []


def test_a_misspelt_field_is_named_with_its_line_and_a_suggestion(tmp_path: Path) -> None:
    [error] = errors(tmp_path, "scenarios:\n  - name: x\n    caller:\n      - say: hi\n        wiat: 1.0\n")
    assert error.endswith("scenarios.yaml:5:9: scenarios[0].caller[0].wiat: unknown field 'wiat' "
                          "(did you mean 'wait'?) " + error[error.index("(allowed here"):])


@pytest.mark.parametrize(
    ("move", "message"),
    [
        ("{say: hi, noise: 1.0}", "a caller move needs exactly one of say, audio, noise, cough, music, silence, press (found: say, noise)"),
        ("{wait: 1.0}", "a caller move needs exactly one of"),
        ("{say: hi, after: previous, turn: reply}", "turn: only with after: agent_starts or agent_done"),
        ("{say: hi, after: agent_finished}", "Input should be 'previous', 'agent_starts' or 'agent_done'"),
        ("{say: [hi, -1]}", "a pause is more than 0 and at most 60 seconds, got -1"),
        ("{press: '12x'}", "String should match pattern"),
        ("{audio: missing.wav}", "missing.wav"),
        ("{say: hi, start: 1.0}", "start, end, pauses and text are for audio: moves"),
    ],
)
def test_caller_moves_are_checked(tmp_path: Path, move: str, message: str) -> None:
    [error] = errors(tmp_path, f"scenarios:\n  - name: x\n    caller:\n      - {move}\n")
    assert "scenarios.yaml:4:" in error and message in error, error


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("{checks: [{yielded: {to: nobody, within: 0.2}}]}", "expect: yielded.to 'nobody' is not the id of a caller move"),
        ("{checks: [{n: 0}]}", "n counts from 1 (the first) or from -1 (the last)"),
        ("{checks: [{latency: {mouth_to_mouth: {max: 1}}}]}", "unknown span 'mouth_to_mouth'"),
        ("{checks: [{latency: {endpointing: {}}}]}", "give min, max or both"),
        ("{checks: [{heard: {matches: '('}}]}", "is not a valid regular expression"),
        ("{checks: [{heard: {contains: a, like: b}}]}", "a text check needs exactly one of exactly, contains, matches, like"),
        ("{turns: [reply/Completed]}", "String should match pattern"),
    ],
)
def test_expectations_are_checked(tmp_path: Path, expect: str, message: str) -> None:
    [error] = errors(tmp_path, f"scenarios:\n  - name: x\n    caller: [{{say: hi}}]\n    expect: {expect}\n")
    assert "scenarios.yaml:" in error and message in error, error


def test_scenario_names_must_be_unique(tmp_path: Path) -> None:
    [error] = errors(tmp_path, "scenarios:\n  - {name: x, caller: [{say: hi}]}\n  - {name: x, caller: [{say: ho}]}\n")
    assert "scenario names must be unique (x used twice)" in error


def test_an_agent_override_is_reported_where_the_scenario_wrote_it(tmp_path: Path) -> None:
    text = ("scenarios:\n  - name: x\n    caller: [{say: hi}]\n    agent:\n"
            "      turn_taking: {endpointing: {min_silense: 0.4}}\n")
    [error] = errors(tmp_path, text)
    assert error.startswith(f"{tmp_path / 'scenarios.yaml'}:5:")
    assert "scenarios[0].agent.turn_taking.endpointing.min_silense: unknown field 'min_silense' " \
           "(did you mean 'min_silence'?)" in error


def test_a_default_override_is_reported_in_the_defaults(tmp_path: Path) -> None:
    text = ("defaults:\n  agent:\n    vad: [{provider: energy, threshold_db: loud}]\n"
            "scenarios:\n  - {name: x, caller: [{say: hi}]}\n")
    [error] = errors(tmp_path, text)
    assert ":3:" in error and "defaults.agent.vad[0].threshold_db: Input should be a valid number" in error


def test_a_mistake_in_the_agent_file_itself_is_reported_there(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(AGENT.read_text().replace("vad: [{provider: energy}]", "vad: [{provider: enrgy}]"))
    [error] = errors(tmp_path, "scenarios:\n  - {name: x, caller: [{say: hi}]}\n", agent)
    assert error.startswith(f"{agent}:") and "unknown vad provider 'enrgy' (did you mean 'energy'?)" in error


def test_an_empty_or_shapeless_file_is_one_line(tmp_path: Path) -> None:
    assert errors(tmp_path, "") == [f"{tmp_path / 'scenarios.yaml'}:1:1: (top level): the file is empty"]
    [error] = errors(tmp_path, "scenarios: []\n")
    assert "scenarios: List should have at least 1 item" in error


def test_env_interpolation_works_as_in_agent_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLER_LINE", "What time is it?")
    path = tmp_path / "scenarios.yaml"
    path.write_text("scenarios:\n  - {name: x, caller: [{say: '${CALLER_LINE}'}]}\n")
    suite = load_suite(AGENT, path, scenario_registry())
    assert suite.model.scenarios[0].caller[0].say == ["What time is it?"]
