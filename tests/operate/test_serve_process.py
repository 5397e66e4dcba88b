"""A real `voiceflow serve` process, as an operator runs it: its /metrics after a call over the
WebSocket transport, and traces switched on by VOICEFLOW_TRACES alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
from operate_calls import Scrape, fetch, question
from serving.serve_process import ServeProcess, agent_file
from starlette.testclient import TestClient

from voiceflow.serving.app import build_app
from voiceflow.serving.host import ServerState
from voiceflow.testing.ws_caller import WsCaller


def test_serve_counts_a_call_and_prints_its_spans_when_traces_are_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEFLOW_TRACES", "console")
    with ServeProcess(agent_file(tmp_path)) as server:
        report = anyio.run(WsCaller(server.ws_url("load-agent"), question()).run)
        status, content_type, body = fetch(server.base_url + "/metrics")
        server.signal()
        assert server.wait() == 0, server.output[-3000:]
    assert [turn["outcome"] for turn in report.turns_ended()] == ["completed", "completed"]
    assert status == 200 and content_type.startswith("text/plain")
    metrics = Scrape(body)
    assert metrics.value("voiceflow_calls_ended_total", agent="load-agent", outcome="caller_hung_up") == 1
    assert metrics.value("voiceflow_mouth_to_ear_seconds_count", agent="load-agent") == 1
    # The console exporter writes each span as a JSON object; they are flushed before the exit.
    spans = [json.loads(text) for text in re.findall(r"^\{\n.*?^\}$", server.output, re.M | re.S)]
    names = [span["name"] for span in spans]
    assert names.count("voiceflow.call") == 1 and names.count("voiceflow.turn") == 2
    call = next(span for span in spans if span["name"] == "voiceflow.call")
    assert call["attributes"]["voiceflow.call.outcome"] == "caller_hung_up"
    assert call["resource"]["attributes"]["service.name"] == "voiceflow"


def test_without_the_metrics_extra_metrics_says_how_to_get_it() -> None:
    with TestClient(build_app([], ServerState(), metrics=None)) as client:
        response = client.get("/metrics")
    assert response.status_code == 501 and "voiceflow[metrics]" in response.json()["message"]
