"""Turn-taking on the virtual clock with scripted providers: barge-in, backchannels, unhappy paths.

The caller audio is synthetic (noise bursts for the energy VAD) because these tests are about
timing decisions; the same state machine runs on real speech and real models in test_offline_agent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness import fake_agent, fake_registry, run_call
from voiceflow.frames import SAMPLE_RATE
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

LONG_REPLY = (
    "Well, there are many things to say about that. First of all, the weather today is mild. "
    "Second, the trains are running on time. Third, the cafe on the corner opens at nine."
)


def agent(**overrides: Any) -> Any:
    registry = fake_registry()
    base: dict[str, Any] = {"prompt": {"system": "Be brief."}}
    base.update(overrides)
    return registry, fake_agent(registry, **base)


def agent_track(call: Any) -> np.ndarray:
    return call._agent.samples[: call._agent.length]


async def test_barge_in_stops_audio_at_once_and_keeps_only_what_was_heard() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["tell me everything", "stop please"]}],
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY, "Sure."]}],
    )
    caller = silence(0.3) + speech_like(0.8) + silence(2.5) + speech_like(1.0, seed=1) + silence(3.0)
    result, call, pool = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    first, second = result.timeline.turns
    assert first.outcome == "interrupted"
    assert first.heard_text and first.heard_text != first.agent_text
    assert LONG_REPLY.startswith(first.heard_text.rstrip("…").rsplit(" ", 1)[0])
    # The agent went quiet within a frame or two of the barge-in decision.
    stop = first.marks["interrupted"] - first.origin
    track = agent_track(call)
    after = track[int((stop + 0.06) * SAMPLE_RATE) : int((stop + 1.0) * SAMPLE_RATE)]
    assert np.abs(after).max() == 0
    # The LLM saw only the heard part, marked as interrupted.
    llm = next(p for p in pool._instances.values() if p.name == "scripted-llm")
    context = llm.requests[-1]
    assistant = [m for m in context if m.role == "assistant"]
    assert assistant[0].content.startswith(first.heard_text)
    assert assistant[0].content.endswith("…") and assistant[0].interrupted
    assert LONG_REPLY not in assistant[0].content
    assert second.user_text == "stop please" and second.outcome == "completed"


async def test_short_backchannel_does_not_interrupt() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["tell me everything"]}],
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY]}],
    )
    # "mm-hm": 0.2 s of speech while the agent talks, under barge_in.min_speech (0.35 s).
    caller = silence(0.3) + speech_like(0.8) + silence(2.5) + speech_like(0.2, seed=2) + silence(9.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    assert [t.outcome for t in result.timeline.turns] == ["completed"]
    assert result.timeline.turns[0].heard_text == LONG_REPLY


async def test_barge_in_disabled_by_policy() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["tell me everything", "hello?"]}],
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY, "Yes?"]}],
        turn_taking={"barge_in": {"enabled": False}},
    )
    caller = silence(0.3) + speech_like(0.8) + silence(2.5) + speech_like(1.0, seed=1) + silence(9.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    assert result.timeline.turns[0].outcome == "completed"
    assert result.timeline.turns[0].heard_text == LONG_REPLY


async def test_non_interruptible_greeting_plays_through() -> None:
    registry, cfg = agent(
        prompt={"system": "x", "greeting": {"text": LONG_REPLY, "interruptible": False}},
        stt=[{"provider": "scripted-stt", "lines": ["hi"]}],
    )
    caller = silence(1.0) + speech_like(1.0) + silence(4.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    assert result.timeline.turns[0].kind == "greeting"
    assert result.timeline.turns[0].outcome == "completed"


async def test_caller_resuming_while_agent_thinks_continues_the_same_turn() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["my number is five five five", "one two three four"]}],
        llm=[{"provider": "scripted-llm", "replies": ["Got it."], "first_token_delay": 1.5}],
    )
    # A 0.55 s pause: long enough to end the turn (min_silence 0.45), then the caller goes on
    # while the LLM is still thinking.
    caller = silence(0.3) + speech_like(1.0) + silence(0.7) + speech_like(1.0, seed=3) + silence(3.0)
    result, _, pool = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    completed = [t for t in result.timeline.turns if t.outcome == "completed"]
    assert len(completed) == 1
    assert completed[0].user_text == "my number is five five five one two three four"


async def test_per_state_override_waits_longer() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["five five five", "one two three"]}],
        turn_taking={"states": {"digits": {"endpointing": {"min_silence": 1.5, "max_wait": 4.0}}}},
    )
    caller = silence(0.3) + speech_like(1.0) + silence(0.9) + speech_like(1.0, seed=3) + silence(3.0)
    from harness import FileCall, FileTransportConfig
    from voiceflow.clock import open_clock
    from voiceflow.runtime.pool import ProviderPool
    from voiceflow.runtime.runner import prepare
    from voiceflow.runtime.session import Session

    pool = ProviderPool(registry)
    await prepare(cfg, pool)
    call = FileCall(FileTransportConfig(start="immediately", lead_in=0), caller)
    async with open_clock("virtual") as clock:
        result = await _run_in_state(Session(cfg, pool, call, clock), "digits")
    call.close()
    turns = [t for t in result.timeline.turns if t.outcome == "completed"]
    assert len(turns) == 1 and turns[0].user_text == "five five five one two three"
    # The reply started on the first final was held back, never heard, and dropped.
    assert [t.outcome for t in result.timeline.turns if t.kind == "reply"] == ["discarded", "completed"]


async def _run_in_state(session: Any, state: str) -> Any:
    """Run a call whose conversation sits in ``state`` from the start (tools switch it mid-call:
    tests/tools/test_tool_calls.py)."""
    from voiceflow.turns import manager as manager_module

    cls = manager_module.TurnManager
    init = cls.__init__

    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.conversation_state = state

    cls.__init__ = patched  # type: ignore[method-assign]
    try:
        return await session.run()
    finally:
        cls.__init__ = init  # type: ignore[method-assign]


async def test_silence_reprompts_then_says_goodbye_and_hangs_up() -> None:
    registry, cfg = agent(
        prompt={"system": "x", "greeting": {"text": "Hello."}},
        unhappy_paths={"silence": {"reprompt_after": 3, "reprompts": ["Still there?"], "goodbye": "Bye now."}},
    )
    from harness import FileCall, FileTransportConfig
    from voiceflow.clock import open_clock
    from voiceflow.runtime.pool import ProviderPool
    from voiceflow.runtime.runner import prepare
    from voiceflow.runtime.session import Session

    pool = ProviderPool(registry)
    await prepare(cfg, pool)
    call = FileCall(FileTransportConfig(), silence(30.0))
    async with open_clock("virtual") as clock:
        result = await Session(cfg, pool, call, clock).run()
    call.close()
    kinds = [(t.kind, t.agent_text) for t in result.timeline.turns]
    assert kinds == [("greeting", "Hello."), ("reprompt", "Still there?"), ("goodbye", "Bye now.")]
    assert result.ended_because == "goodbye"
    gap = result.timeline.turns[1].marks["first_audio_out"] - result.timeline.turns[0].marks["reply_heard"]
    assert 3.0 <= gap < 3.3


async def test_empty_transcript_asks_to_repeat() -> None:
    registry, cfg = agent(stt=[{"provider": "scripted-stt", "lines": [""]}])
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    turn = result.timeline.turns[0]
    assert turn.kind == "unclear" and turn.agent_text == cfg.unhappy_paths.unclear


async def test_llm_failure_falls_back_then_apologises_when_all_fail() -> None:
    registry, cfg = agent(
        llm=[
            {"provider": "scripted-llm", "fail": True},
            {"provider": "scripted-llm", "replies": ["From the backup."], "first_token_delay": 0.05},
        ],
    )
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    turn = result.timeline.turns[0]
    assert turn.agent_text == "From the backup." and turn.outcome == "completed"
    assert turn.fallbacks and "scripted failure" in turn.fallbacks[0]

    registry, cfg = agent(llm=[{"provider": "scripted-llm", "fail": True}])
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    assert [(t.kind, t.outcome) for t in result.timeline.turns] == [("reply", "failed"), ("apology", "completed")]


async def test_llm_first_byte_timeout_moves_to_next_provider() -> None:
    registry, cfg = agent(
        llm=[
            {"provider": "scripted-llm", "first_token_delay": 5.0, "timeouts": {"first_byte": 0.3}},
            {"provider": "scripted-llm", "replies": ["Quick one."], "first_token_delay": 0.05},
        ],
    )
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    turn = result.timeline.turns[0]
    assert turn.agent_text == "Quick one."
    assert "no output within 0.3 s" in turn.fallbacks[0]
    assert turn.span("llm_ttfb") is not None and 0.3 < turn.span("llm_ttfb") < 0.6  # type: ignore[operator]


async def test_recogniser_failure_costs_the_turn_not_the_call() -> None:
    registry, cfg = agent(stt=[{"provider": "scripted-stt", "lines": ["second try"], "fail_on": [0]}])
    caller = silence(0.3) + speech_like(0.8) + silence(6.0) + speech_like(0.8, seed=5) + silence(3.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    assert [(t.kind, t.outcome) for t in result.timeline.turns] == [("apology", "completed"), ("reply", "completed")]
    assert result.timeline.turns[1].user_text == "second try"


async def test_empty_llm_reply_is_not_silence() -> None:
    registry, cfg = agent(llm=[{"provider": "scripted-llm", "replies": [""]}])
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    assert [(t.kind, t.outcome) for t in result.timeline.turns] == [("reply", "failed"), ("apology", "completed")]


async def test_without_preemption_the_reply_starts_at_the_endpoint() -> None:
    registry, cfg = agent(turn_taking={"endpointing": {"preemptive": False}})
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    (turn,) = result.timeline.turns
    assert turn.marks["llm_request"] >= turn.marks["endpoint"]
    assert "preemptive_start" not in turn.marks
    assert turn.span("preemptive_head_start") is None

    registry, cfg = agent(turn_taking={"endpointing": {"min_silence": 1.0}})
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(3.0),
                                  start="immediately", lead_in=0)
    (turn,) = result.timeline.turns
    # With preemption the reply began while the silence was still being confirmed: the timeline
    # shows how much of the pause it used (and the caller waited that much less).
    head_start = turn.span("preemptive_head_start")
    assert head_start is not None and 0.5 < head_start < 1.0
    assert turn.marks["llm_request"] < turn.marks["endpoint"]


async def test_a_slow_recogniser_never_stalls_the_turn() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["too late"], "delay": 2.0}],
        turn_taking={"endpointing": {"max_wait": 1.0}},
    )
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(4.0),
                                  start="immediately", lead_in=0)
    turn = result.timeline.turns[0]
    # No final within max_wait: the agent apologises and asks again instead of sitting silent,
    # and the timeline says the recogniser failed (it is not the caller who was unclear).
    assert turn.kind == "apology"
    assert turn.failure == "stt/scripted-stt: no final transcript within max_wait 1 s"
    assert turn.marks["endpoint"] - turn.marks["user_speech_end"] < 1.3


async def test_an_llm_failing_mid_reply_is_continued_by_the_next_one() -> None:
    registry, cfg = agent(
        llm=[
            {"provider": "scripted-llm", "replies": [LONG_REPLY], "fail_after_words": 12},
            {"provider": "scripted-llm", "replies": ["and that is all."]},
        ],
    )
    result, _, pool = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(12.0),
                                     start="immediately", lead_in=0)
    reply = result.timeline.turns[0]
    first_words = " ".join(LONG_REPLY.split()[:12])
    assert reply.outcome == "completed" and "mid-stream" in reply.fallbacks[0]
    assert reply.agent_text == f"{first_words} and that is all."  # one reply, nothing repeated
    assert reply.heard_text == reply.agent_text
    backup = [p for p in pool.instances() if getattr(p.config, "replies", None) == ["and that is all."]][0]
    request = backup.requests[-1]  # type: ignore[attr-defined]
    assert (request[-2].role, request[-2].content) == ("assistant", first_words)
    assert request[-1].role == "system" and "Continue it" in request[-1].content


async def test_an_llm_failing_mid_reply_without_a_backup_is_apologised_for() -> None:
    registry, cfg = agent(
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY], "fail_after_words": 12}],
    )
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(0.8) + silence(12.0),
                                  start="immediately", lead_in=0)
    failed, apology = result.timeline.turns[:2]
    assert failed.outcome == "failed" and "mid-stream" in failed.fallbacks[0]
    assert failed.failure == "llm failed (scripted-llm: mid-stream: RuntimeError: scripted failure mid-reply)"
    assert apology.kind == "apology" and apology.outcome == "completed"




async def test_a_turn_heard_with_low_confidence_is_asked_again_not_answered() -> None:
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["wreck a nice beach", "recognise speech"],
              "confidences": [0.12, 0.91]}],
        llm=[{"provider": "scripted-llm", "replies": ["Speech, yes."]}],
    )
    caller = silence(0.3) + speech_like(1.0) + silence(4.0) + speech_like(1.0, seed=2) + silence(4.0)
    result, _, pool = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    kinds = [(t.kind, t.user_text) for t in result.timeline.turns]
    assert kinds == [("unclear", "wreck a nice beach"), ("reply", "recognise speech")]
    assert result.timeline.turns[0].failure == "recogniser confidence 0.12 below 0.2"
    llm = next(p for p in pool.instances() if p.name == "scripted-llm")
    assert "wreck a nice beach" not in str(llm.requests)


async def test_a_short_unsure_greeting_does_not_sink_the_clear_question_of_its_turn() -> None:
    # Whisper gives a lone "Hi" 0.13-0.21 and the question after it 0.70: the turn is scored as a
    # whole (word-weighted), not by its least sure word, so the question is answered.
    registry, cfg = agent(
        stt=[{"provider": "scripted-stt", "lines": ["hi", "what is the capital of france"],
              "confidences": [0.12, 0.9]}],
        llm=[{"provider": "scripted-llm", "replies": ["Paris."]}],
        turn_taking={"endpointing": {"min_silence": 0.8}},
    )
    caller = silence(0.3) + speech_like(0.4) + silence(0.4) + speech_like(1.2, seed=2) + silence(4.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    [turn] = result.timeline.turns
    assert (turn.kind, turn.user_text, turn.outcome) == ("reply", "hi what is the capital of france", "completed")


def test_a_turns_confidence_is_its_finals_word_weighted_geometric_mean_carried_into_its_continuation() -> None:
    from voiceflow.turns.replies import UserTurn

    turn = UserTurn(start=0.0, segment_start=0.0)
    assert turn.confidence is None
    turn.add_final("hi", 0.12)
    turn.add_final("what is the capital of france", 0.9)
    turn.add_final("", 0.01)  # no words: no weight
    turn.add_final("please", None)  # unscored
    assert turn.confidence == pytest.approx((0.12 * 0.9**6) ** (1 / 7))
    went_on = UserTurn(start=2.0, segment_start=2.0)
    went_on.continues(turn)
    went_on.add_final("thanks", 0.0)
    assert went_on.text == "hi what is the capital of france please thanks"
    assert went_on.confidence == pytest.approx((0.12 * 0.9**6 * 1e-6) ** (1 / 8))
    assert went_on.requested
