"""The end-of-turn model's verdicts moving the endpoint, on the virtual clock with a scripted
model (the real smart-turn model is tested on real recordings in tests/turn_detection/)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import fake_agent, fake_registry, run_call
from voiceflow.testing.fakes import ScriptedTurn, silence, speech_like

pytestmark = pytest.mark.anyio

PAUSED = silence(0.3) + speech_like(1.0) + silence(0.9) + speech_like(1.0, seed=3) + silence(4.0)
"""A caller who pauses 0.9 s mid-utterance, then goes on."""


def agent(turn: list[dict[str, Any]] | None = None, **endpointing: Any) -> tuple[Any, Any]:
    registry = fake_registry()
    extra: dict[str, Any] = {"turn_detection": turn} if turn is not None else {}
    cfg = fake_agent(
        registry,
        prompt={"system": "x"},
        stt=[{"provider": "scripted-stt", "lines": ["my number is five five five", "one two three four"]}],
        # The words are left out of it here: these tests are about the model's verdicts.
        turn_taking={"endpointing": {"min_silence": 0.45, "transcript_rules": {"enabled": False}, **endpointing}},
        **extra,
    )
    return registry, cfg


def replies(result: Any) -> list[Any]:
    return [t for t in result.timeline.turns if t.kind == "reply" and t.outcome != "discarded"]


def model_of(pool: Any) -> ScriptedTurn:
    return next(p for p in pool.instances() if isinstance(p, ScriptedTurn))


async def test_an_unfinished_verdict_holds_the_turn_over_a_mid_utterance_pause() -> None:
    registry, cfg = agent([{"provider": "scripted-turn", "verdicts": [0.1, 0.9]}],
                          turn_model={"unfinished_silence": 2.0})
    result, _, pool = await run_call(cfg, registry, PAUSED, start="immediately", lead_in=0)
    [reply] = replies(result)
    assert reply.user_text == "my number is five five five one two three four"
    assert reply.endpointing == ["scripted-turn: unfinished (0.10)", "scripted-turn: finished (0.90)"]
    seconds, _ = model_of(pool).asked[0]
    assert 1.0 <= seconds <= 1.4  # the caller's audio up to the pause (0.3 s lead-in + 1.0 s speech)

    registry, control = agent()
    result, _, _ = await run_call(control, registry, PAUSED, start="immediately", lead_in=0)
    assert [t.user_text for t in replies(result)] == ["my number is five five five", "one two three four"]


async def test_a_finished_verdict_ends_the_turn_sooner_than_the_silence_rule() -> None:
    one_turn = silence(0.3) + speech_like(1.0) + silence(4.0)
    registry, cfg = agent([{"provider": "scripted-turn", "verdicts": [0.95]}], min_silence=1.2,
                          turn_model={"finished_silence": 0.2})
    result, _, _ = await run_call(cfg, registry, one_turn, start="immediately", lead_in=0)
    [reply] = replies(result)
    assert reply.span("endpointing") < 1.2
    assert reply.marks["turn_judged"] <= reply.marks["endpoint"]

    registry, control = agent(min_silence=1.2)
    result, _, _ = await run_call(control, registry, one_turn, start="immediately", lead_in=0)
    assert replies(result)[0].span("endpointing") >= 1.2


@pytest.mark.parametrize("model", [{"fail": True}, {"delay": 30.0}])
async def test_a_failing_or_slow_model_leaves_the_silence_rule_in_charge(model: dict[str, Any]) -> None:
    one_turn = silence(0.3) + speech_like(1.0) + silence(5.0)
    registry, cfg = agent([{"provider": "scripted-turn", "timeouts": {"first_byte": 1.0}, **model}],
                          turn_model={"verdict_wait": 0.3})
    result, _, _ = await run_call(cfg, registry, one_turn, start="immediately", lead_in=0)
    [reply] = replies(result)
    assert reply.outcome == "completed"
    assert 0.45 <= reply.span("endpointing") <= 0.45 + 0.3 + 0.1
    if model.get("fail"):
        assert reply.endpointing == ["end-of-turn model: no verdict (silence rule)"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I would like to order a pizza and", "ends on 'and'"),
        ("so um", "ends on 'um'"),
        ("my number is five five five", "mid-number"),
        ("it's 0 7 7", "mid-number"),
        ("the code is 4471", "mid-number"),
        ("my name is J O H", "mid-spelling"),
        ("apples, oranges,", "ends mid-list"),
        ("what time do you open?", "a complete question"),
    ],
)
def test_transcript_rules_name_what_they_heard(text: str, reason: str) -> None:
    from voiceflow.config.models import TranscriptRules
    from voiceflow.turns.transcript_rules import TranscriptJudge

    [hint] = TranscriptJudge(TranscriptRules()).hints(text)
    assert hint.reason == reason


@pytest.mark.parametrize("text", ["I want a large pizza.", "I'm 25", "Thanks a lot!", "yes", ""])
def test_transcript_rules_leave_finished_sentences_alone(text: str) -> None:
    from voiceflow.config.models import TranscriptRules
    from voiceflow.turns.transcript_rules import TranscriptJudge

    assert TranscriptJudge(TranscriptRules()).hints(text) == []


async def test_a_trailing_conjunction_holds_the_turn_and_a_question_ends_it_sooner() -> None:
    registry = fake_registry()
    lines = ["i would like a pizza and", "a salad please", "what time do you close?"]
    cfg = fake_agent(registry, prompt={"system": "x"},
                     stt=[{"provider": "scripted-stt", "lines": lines}],
                     turn_taking={"endpointing": {"min_silence": 0.6}})
    caller = (silence(0.3) + speech_like(1.0) + silence(0.9) + speech_like(1.0, seed=3) + silence(4.0)
              + speech_like(1.0, seed=4) + silence(4.0))
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    first, second = replies(result)
    assert first.user_text == "i would like a pizza and a salad please"
    assert first.endpointing[0] == "transcript: ends on 'and' (1.2 s)"
    assert second.user_text == "what time do you close?"
    assert second.endpointing == ["transcript: a complete question (0.3 s)"]
    assert second.span("endpointing") < 0.6


async def test_the_agent_files_own_rule_waits_longer() -> None:
    registry = fake_registry()
    cfg = fake_agent(registry, prompt={"system": "x"},
                     stt=[{"provider": "scripted-stt", "lines": ["put me through to extension", "two hundred"]}],
                     turn_taking={"endpointing": {"transcript_rules": {
                         "extra": [{"pattern": r"(?i)\bextension\s*$", "silence": 2.0}]}}})
    result, _, _ = await run_call(cfg, registry, PAUSED, start="immediately", lead_in=0)
    [reply] = replies(result)
    assert reply.user_text == "put me through to extension two hundred"
