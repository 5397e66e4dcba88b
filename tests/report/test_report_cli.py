"""`voiceflow report` and `voiceflow run --report` as a user types them (in process, so the
scripted providers can stand in for the models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import structlog
import yaml
from PIL import Image
from report_calls import EVENTFUL_AGENT
from typer.testing import CliRunner

import voiceflow.cli
import voiceflow.report.command
from voiceflow.audio import write_wav
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing import fakes
from voiceflow.testing.fakes import silence, speech_like


def invoke(*args: str) -> tuple[int, str, str]:
    try:
        result = CliRunner().invoke(voiceflow.cli.app, list(args))
    finally:
        structlog.reset_defaults()  # `run` configures logging for the process: not for the next tests
    return result.exit_code, result.stdout, result.stderr


def test_a_folder_of_calls_gives_a_page_a_picture_and_the_figures(timelines: Path, tmp_path: Path) -> None:
    (timelines / "notes.json").write_text('{"not": "a timeline"}')
    try:
        code, out, err = invoke("report", str(timelines), "-o", str(tmp_path / "calls.html"))
    finally:
        (timelines / "notes.json").unlink()
    assert code == 0, err
    assert "notes.json: not a voiceflow timeline" in err
    assert out.startswith("latency over 6 turns in 2 calls:")
    assert "eventful.timeline.json turn 2: mouth_to_ear" in out
    assert f"report:  {tmp_path / 'calls.html'}" in out and f"picture: {tmp_path / 'calls.png'}" in out
    assert (tmp_path / "calls.html").read_text().startswith("<!DOCTYPE html>")
    with Image.open(tmp_path / "calls.png") as image:
        assert image.format == "PNG" and image.width == 1100


def test_an_agent_files_budget_is_checked_again(timelines: Path, tmp_path: Path) -> None:
    """Timelines recorded under one budget, reported under another: LLM first token over 150 ms
    on the replies whose first model failed first (the caller waited for the failed try too); by
    the last reply the failing model is skipped by its circuit breaker, and it keeps the budget."""
    agent = {**EVENTFUL_AGENT, "tools": [], "latency_budget": {"llm_ttfb_ms": 150}}
    agent["transport"] = {"provider": "file"}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(agent))
    registry = PluginRegistry(plugins=[fakes])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(voiceflow.cli, "PluginRegistry", lambda: registry)
        code, out, err = invoke("report", str(timelines / "eventful.timeline.json"), "--agent",
                                str(tmp_path / "agent.yaml"), "-o", str(tmp_path / "r.html"), "--no-png")
    assert code == 0, err
    timeline = json.loads((timelines / "eventful.timeline.json").read_text())
    expected = [turn["index"] for turn in timeline["turns"] if turn["spans"].get("llm_ttfb", 0) > 0.150]
    assert expected == [1, 2]
    flagged = [int(line.split(" turn ")[1].split(":")[0]) for line in out.splitlines() if ": llm_ttfb " in line]
    assert flagged == expected
    assert "mouth_to_ear" not in out.split("latency budget misses")[1]  # the recorded misses are replaced
    assert not (tmp_path / "r.png").exists()


def test_mistakes_are_one_line_each(timelines: Path, tmp_path: Path) -> None:
    code, _, err = invoke("report", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json: no such file or folder" in err
    (tmp_path / "bad.json").write_text("{")
    code, _, err = invoke("report", str(tmp_path / "bad.json"))
    assert code == 2 and "bad.json: not JSON" in err
    copy = tmp_path / "call.timeline.json"
    shutil.copy(timelines / "plain.timeline.json", copy)
    code, _, err = invoke("report", str(copy), "-o", str(copy))
    assert code == 2 and "is one of the timelines being read" in err
    code, _, err = invoke("report", str(copy), "--png", str(tmp_path / "x.png"), "--no-png")
    assert code == 2 and "choose one" in err
    code, _, err = invoke("report", str(copy), "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert code == 2 and "cannot write the report" in err


def test_without_pillow_the_page_is_still_written(timelines: Path, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(voiceflow.report.command, "pillow_missing", lambda: True)
        code, out, err = invoke("report", str(timelines), "-o", str(tmp_path / "r.html"))
        assert code == 0 and "picture skipped: the PNG needs Pillow: pip install 'voiceflow[report]'" in err
        assert (tmp_path / "r.html").exists() and not (tmp_path / "r.png").exists()
        assert "picture:" not in out
        code, _, err = invoke("report", str(timelines), "-o", str(tmp_path / "s.html"), "--png", str(tmp_path / "s.png"))
        assert code == 2 and err.startswith("--png: the PNG needs Pillow")


def test_run_writes_the_report_of_the_call(tmp_path: Path) -> None:
    agent = {**EVENTFUL_AGENT, "tools": [],
             "llm": [{"provider": "scripted-llm", "replies": ["It is noon."], "first_token_delay": 0.3}],
             "latency_budget": {"llm_ttfb_ms": 200}}
    agent["stt"] = [{"provider": "scripted-stt", "lines": ["what time is it"]}]
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(agent))
    write_wav(tmp_path / "caller.wav", silence(0.5) + speech_like(1.0) + silence(2.0))
    registry = PluginRegistry(plugins=[fakes])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(voiceflow.cli, "PluginRegistry", lambda: registry)
        code, out, err = invoke("run", str(tmp_path / "agent.yaml"), "--input", str(tmp_path / "caller.wav"),
                                "--output", str(tmp_path / "call.wav"), "--report", str(tmp_path / "call.html"))
        assert code == 0, err
        missing_folder = invoke("run", str(tmp_path / "agent.yaml"), "--input", str(tmp_path / "caller.wav"),
                                "--report", str(tmp_path / "missing" / "call.html"))
    assert "mouth-to-ear" in out and f"report:  {tmp_path / 'call.html'}" in out
    page = (tmp_path / "call.html").read_text()
    assert 'data-turn="1"' in page and "latency budget: llm_ttfb" in page
    assert json.loads((tmp_path / "call.timeline.json").read_text())["turns"][1]["budget_misses"][0]["span"] == "llm_ttfb"
    with Image.open(tmp_path / "call.png") as image:
        assert image.format == "PNG"
    code, _, err = missing_folder
    assert code == 2 and "--report:" in err and "does not exist" in err, err
