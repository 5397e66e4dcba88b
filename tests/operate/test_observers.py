"""The call observers' seam: each moment reported once, whatever the call's end, and an observer
that fails never costs a call; the labels both metrics and traces use."""

from __future__ import annotations

from typing import Any

import pytest
from operate_calls import question, ws_agent

from voiceflow.metrics.calls import DRAIN_REASON, STAGES, call_outcome, fallback_stage
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.runtime.session import CallResult, Session
from voiceflow.serving import server
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import WsCaller

pytestmark = pytest.mark.anyio


class Recorder:
    """Records every moment it is told of; optionally fails at each."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.moments: list[tuple[str, Any]] = []

    def call_started(self, agent: str, session: Session) -> Recorder:
        self._moment("started", session.call_id)
        return self

    def refused(self, agent: str, reason: str) -> None:
        self._moment("refused", reason)

    def turn_ended(self, turn: TurnTimeline) -> None:
        self._moment("turn", (turn.index, turn.outcome))

    def call_ended(self, result: CallResult) -> None:
        self._moment("ended", result.ended_because)

    def _moment(self, what: str, detail: Any) -> None:
        self.moments.append((what, detail))
        if self.fail:
            raise RuntimeError(f"observer broke at {what}")


async def test_every_moment_is_reported_once_in_order_and_a_failing_observer_costs_nothing() -> None:
    broken, recorder = Recorder(fail=True), Recorder()
    registry, agent = ws_agent()
    async with served_agents([agent], registry, observers=[broken, recorder]) as served:
        report = await WsCaller(served.ws_url(agent.name), question()).run()
        call_id = served.results[0].call_id
    assert [t["outcome"] for t in report.turns_ended()] == ["completed", "completed"]
    assert recorder.moments == [
        ("started", call_id), ("turn", (0, "completed")), ("turn", (1, "completed")), ("ended", "caller hung up"),
    ]
    assert broken.moments == [("started", call_id)]  # it broke there and was left out of that call


def test_call_outcomes_are_a_few_stable_labels() -> None:
    assert DRAIN_REASON == server.DRAIN_REASON
    cases = {
        "caller hung up": "caller_hung_up", "goodbye": "agent_hung_up", "end of input": "end_of_input",
        DRAIN_REASON: "drained", "cut off: stopped by SIGTERM": "cut_off", "failed: RuntimeError: x": "failed",
        "unavailable: no tts provider could be prepared": "unavailable", "scenario time limit": "other", "": "other",
    }
    assert {reason: call_outcome(reason) for reason in cases} == cases


def test_fallback_entries_name_their_stage_and_provider_and_notes_are_not_fallbacks() -> None:
    assert fallback_stage("tts/elevenlabs: timed out after 1.5 s") == ("tts", "elevenlabs")
    assert fallback_stage("llm/openai: skipped: circuit open after 3 failures") == ("llm", "openai")
    assert fallback_stage("llm: reply cut at 2000 characters") is None
    assert fallback_stage("weird/x: y") is None and fallback_stage("stt/openai") is None


def test_a_stage_runs_from_its_start_mark_to_its_end_or_first_output() -> None:
    turn = TurnTimeline(0, "reply", marks={"llm_request": 1.0, "llm_first_token": 1.2, "llm_done": 2.0,
                                            "tts_request": 1.3, "tts_first_audio": 1.4})
    llm, tts = (next(s for s in STAGES if s.name == name) for name in ("llm", "tts"))
    assert llm.interval(turn) == (1.0, 2.0) and llm.ttfb(turn) == pytest.approx(0.2)
    assert tts.interval(turn) == (1.3, 1.4) and tts.ttfb(turn) == pytest.approx(0.1)
    assert next(s for s in STAGES if s.name == "stt").interval(turn) is None
