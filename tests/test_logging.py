"""Structured logs: JSON on request, session and turn ids on every event of a call."""

from __future__ import annotations

import json

import pytest
import structlog

from harness import fake_agent, fake_registry, run_call
from voiceflow.logging import configure_logging
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

LONG = "Well, first of all, this is a long reply. It goes on and on so that you can interrupt it."


async def test_json_logs_carry_session_and_turn_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    try:
        registry = fake_registry()
        agent = fake_agent(
            registry,
            stt=[{"provider": "scripted-stt", "lines": ["go on", "stop"]}],
            llm=[{"provider": "scripted-llm", "replies": [LONG, "Okay."]}],
        )
        caller = silence(0.3) + speech_like(0.8) + silence(2.0) + speech_like(1.0, seed=1) + silence(2.0)
        await run_call(agent, registry, caller, start="immediately", lead_in=0)
    finally:
        structlog.reset_defaults()
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert {e["event"] for e in events} >= {"call started", "barge-in", "call ended"}
    assert all(e["session_id"] == "file:silence" for e in events)
    barge_in = next(e for e in events if e["event"] == "barge-in")
    assert barge_in["turn_id"] == 0 and barge_in["level"] == "info" and "timestamp" in barge_in
