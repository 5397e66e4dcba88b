"""Latency budgets: real calls on scripted providers, where the transcript rules make one turn's
endpointing long on purpose, flag exactly that turn, blame the right stage, log it and record it
in the turn's timeline; the critical-path shares that blame rests on add up to mouth-to-ear."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from harness import fake_agent, fake_registry, run_call
from voiceflow.config.errors import ConfigError
from voiceflow.metrics.budget import LatencyBudget, budget_misses, record_misses, turn_misses
from voiceflow.metrics.critical_path import critical_shares
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.runtime.session import CallResult
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

LINES = ["what time is it", "I would like to go to", "thanks"]
"""The second line ends on 'to': the transcript rules wait 1.2 s of silence, the others 0.45 s."""

CALLER = (
    silence(0.5) + speech_like(1.0) + silence(2.5)
    + speech_like(1.0, seed=2) + silence(3.0)
    + speech_like(0.6, seed=3) + silence(2.5)
)


async def three_turns(**overrides: Any) -> CallResult:
    registry = fake_registry()
    agent = fake_agent(
        registry,
        stt=[{"provider": "scripted-stt", "lines": LINES}],
        llm=[{"provider": "scripted-llm", "replies": ["Noon.", "Where to?", "Bye."]}],
        **overrides,
    )
    result, _, _ = await run_call(agent, registry, CALLER)
    assert [turn.user_text for turn in result.timeline.turns[1:]] == LINES
    return result


async def test_the_turn_with_the_long_pause_is_flagged_and_blamed_on_endpointing() -> None:
    with capture_logs() as logs:
        result = await three_turns(latency_budget={"endpointing_ms": 800, "mouth_to_ear_ms": 900})
    slow = result.timeline.turns[2]
    assert [turn.index for turn in result.timeline.turns if turn.budget_misses] == [2]
    assert {(miss.span, miss.blame) for miss in slow.budget_misses} == {
        ("endpointing", "endpointing"),
        ("mouth_to_ear", "endpointing"),
    }
    m2e = next(miss for miss in slow.budget_misses if miss.span == "mouth_to_ear")
    assert m2e.seconds == pytest.approx(slow.mouth_to_ear)
    assert m2e.budget == 0.9
    assert 1.15 < m2e.blame_seconds <= m2e.seconds
    recorded = slow.as_dict()["budget_misses"]
    assert {(entry["span"], entry["budget_ms"]) for entry in recorded} == {("endpointing", 800), ("mouth_to_ear", 900)}
    assert all(turn.as_dict()["budget_misses"] == [] for turn in result.timeline.turns if turn is not slow)
    missed = [entry for entry in logs if entry["event"] == "latency budget missed"]
    assert sorted((entry["turn"], entry["span"], entry["blame"]) for entry in missed) == [
        (2, "endpointing", "endpointing"),
        (2, "mouth_to_ear", "endpointing"),
    ]


async def test_budget_misses_is_what_a_test_runner_calls_and_a_loose_budget_passes() -> None:
    result = await three_turns()
    assert all(not turn.budget_misses for turn in result.timeline.turns)  # no budget set: nothing checked
    tight = LatencyBudget(tts_ttfb_ms=10)
    assert {miss.turn for miss in budget_misses(result.timeline, tight)} == {0, 1, 2, 3}  # the greeting too
    assert budget_misses(result.timeline, LatencyBudget(mouth_to_ear_ms=1500, llm_ttfb_ms=300)) == []
    only_llm = budget_misses(result.timeline, LatencyBudget(llm_ttfb_ms=50))
    assert {(miss.turn, miss.blame) for miss in only_llm} == {(1, "llm_ttfb"), (2, "llm_ttfb"), (3, "llm_ttfb")}


async def test_shares_add_up_to_mouth_to_ear_in_a_real_call() -> None:
    result = await three_turns()
    for turn in result.timeline.turns[1:]:
        shares = critical_shares(turn.marks)
        assert sum(shares.values()) == pytest.approx(turn.mouth_to_ear)
        assert set(shares) <= {"endpointing", "stt_ttfb", "handoff", "llm_ttfb", "first_clause", "tts_ttfb", "playout"}
    assert critical_shares(result.timeline.turns[0].marks) == {}  # the greeting has no caller turn


# Hand-made marks (seconds): the walk back from the first audio heard, and the blame rule.
PREEMPTIVE = {
    "user_speech_end": 0.0, "vad_end_detected": 0.2, "stt_finalize": 0.2, "stt_final": 0.3,
    "preemptive_start": 0.31, "llm_request": 0.31, "endpoint": 0.45, "llm_first_token": 0.71,
    "first_clause": 0.9, "tts_request": 0.9, "tts_first_audio": 1.0, "first_audio_out": 1.02,
}


def test_a_preemptive_reply_slower_than_the_endpoint_waits_on_its_own_stages() -> None:
    shares = critical_shares(PREEMPTIVE)
    assert shares == pytest.approx({
        "endpointing": 0.2, "stt_ttfb": 0.1, "handoff": 0.01, "llm_ttfb": 0.4,
        "first_clause": 0.19, "tts_ttfb": 0.1, "playout": 0.02,
    })
    assert list(shares) == ["endpointing", "stt_ttfb", "handoff", "llm_ttfb", "first_clause", "tts_ttfb", "playout"]


def test_a_reply_ready_before_the_endpoint_waits_on_endpointing_alone() -> None:
    marks = {**PREEMPTIVE, "endpoint": 1.2, "first_audio_out": 1.21}
    assert critical_shares(marks) == pytest.approx({"endpointing": 1.2, "playout": 0.01})


def test_an_endpoint_right_after_a_slow_final_transcript_waited_on_the_recogniser() -> None:
    """The endpoint needs enough silence and the final: coming within a frame of the final, it
    was the recogniser the caller waited for (here 0.45 s, with the silence long enough at 0.3 s)."""
    marks = {"user_speech_end": 0.0, "vad_end_detected": 0.1, "stt_finalize": 0.1, "stt_final": 0.55,
             "endpoint": 0.551, "llm_request": 0.552, "llm_first_token": 0.7, "first_clause": 0.8,
             "tts_request": 0.8, "tts_first_audio": 0.9, "first_audio_out": 0.9}
    assert critical_shares(marks) == pytest.approx({
        "endpointing": 0.101, "stt_ttfb": 0.45, "handoff": 0.001, "llm_ttfb": 0.148, "first_clause": 0.1,
        "tts_ttfb": 0.1, "playout": 0.0,
    })
    [miss] = turn_misses(1, marks, LatencyBudget(mouth_to_ear_ms=800))
    assert (miss.blame, round(miss.blame_seconds, 3)) == ("stt_ttfb", 0.45)


def test_missing_marks_leave_the_rest_unattributed() -> None:
    assert critical_shares({"user_speech_end": 1.0, "keypad": 1.1, "first_audio_out": 1.5}) == pytest.approx(
        {"other": 0.5}
    )


def test_blame_goes_to_the_stage_over_its_own_budget_else_to_the_largest_share() -> None:
    over_llm = turn_misses(4, PREEMPTIVE, LatencyBudget(mouth_to_ear_ms=800, llm_ttfb_ms=300))
    assert [(m.span, m.blame, round(m.blame_seconds, 3)) for m in over_llm] == [
        ("mouth_to_ear", "llm_ttfb", 0.4), ("llm_ttfb", "llm_ttfb", 0.4)
    ]
    # Two stages over budget: the larger overrun (LLM 0.4 - 0.3) beats the smaller (TTS 0.1 - 0.05).
    both = turn_misses(4, PREEMPTIVE, LatencyBudget(mouth_to_ear_ms=800, llm_ttfb_ms=300, tts_ttfb_ms=50))
    assert both[0].blame == "llm_ttfb"
    # Every stage within its own budget: the largest share is to blame.
    largest = turn_misses(4, PREEMPTIVE, LatencyBudget(mouth_to_ear_ms=800))
    assert [(m.span, m.blame) for m in largest] == [("mouth_to_ear", "llm_ttfb")]
    assert "llm_ttfb" in largest[0].describe() and "800 ms budget" in largest[0].describe()
    # A hidden stage does not take the blame: STT over its budget, but inside the silence wait.
    hidden = turn_misses(4, {**PREEMPTIVE, "stt_final": 0.44, "endpoint": 1.2, "first_audio_out": 1.21},
                         LatencyBudget(mouth_to_ear_ms=800, stt_ttfb_ms=100))
    assert [(m.span, m.blame) for m in hidden] == [("mouth_to_ear", "endpointing"), ("stt_ttfb", "stt_ttfb")]


def test_budgets_in_the_agent_file_are_checked_like_every_field() -> None:
    registry = fake_registry()
    agent = fake_agent(registry, latency_budget={"mouth_to_ear_ms": 900, "llm_ttfb_ms": 400})
    assert agent.latency_budget.limits() == {"mouth_to_ear": 0.9, "llm_ttfb": 0.4}
    assert fake_agent(registry).latency_budget.limits() == {}
    with pytest.raises(ConfigError, match="mouth_to_ear_msec"):
        fake_agent(registry, latency_budget={"mouth_to_ear_msec": 900})
    with pytest.raises(ConfigError, match="llm_ttfb_ms"):
        fake_agent(registry, latency_budget={"llm_ttfb_ms": 0})


def test_recording_twice_logs_each_miss_once() -> None:
    """A call stopped early is reported from a partial result, then again at its end."""
    timeline = CallTimeline("call-x", origin=100.0)
    turn = timeline.new_turn("reply")
    turn.marks = {name: 100.0 + t for name, t in PREEMPTIVE.items()}
    turn.outcome = "completed"
    dropped = timeline.new_turn("reply")
    dropped.marks, dropped.outcome = dict(turn.marks), "discarded"  # never heard: not checked
    budget = LatencyBudget(mouth_to_ear_ms=800)
    with capture_logs() as logs:
        first = record_misses(timeline, budget)
        second = record_misses(timeline, budget)
    assert first == second == turn.budget_misses and len(first) == 1 and dropped.budget_misses == []
    assert [entry["turn"] for entry in logs if entry["event"] == "latency budget missed"] == [0]
    assert turn.as_dict()["budget_misses"] == [
        {"span": "mouth_to_ear", "ms": 1020.0, "budget_ms": 800.0, "blame": "llm_ttfb", "blame_ms": 400.0}
    ]
