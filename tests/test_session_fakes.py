"""Whole calls with scripted providers on the virtual clock: the turn-taking state machine."""

from __future__ import annotations

import time

import pytest

from harness import fake_agent, fake_registry, run_call
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio


async def test_greeting_then_answer_with_timeline() -> None:
    registry = fake_registry()
    agent = fake_agent(registry)
    started = time.monotonic()
    result, call, _ = await run_call(agent, registry, silence(0.5) + speech_like(1.0) + silence(2.0))
    wall = time.monotonic() - started
    kinds = [turn.kind for turn in result.timeline.turns]
    assert kinds == ["greeting", "reply"]
    reply = result.timeline.turns[1]
    assert reply.user_text == "what time is it"
    assert reply.agent_text == "It is noon, more or less."
    assert reply.outcome == "completed"
    assert reply.heard_text == reply.agent_text
    m2e = reply.mouth_to_ear
    assert m2e is not None
    # The floor is endpointing (0.45 s of silence): the reply was prepared during that silence
    # (STT 0.1 s, LLM 0.1 s, TTS 0.05 s) and released the moment the turn was confirmed over.
    assert 0.45 < m2e < 0.65, reply.as_dict()
    assert reply.marks["llm_request"] < reply.marks["endpoint"] < reply.marks["first_audio_out"]
    assert result.ended_because == "end of input"
    assert wall < m2e * 3 + 2  # idle time (greeting playout, trailing silence) was skipped


async def test_a_third_party_plugin_provider_runs_in_a_call() -> None:
    """The example plugin package is installed like any other; its LLM answers a real call."""
    registry = fake_registry()
    agent = fake_agent(registry, llm=[{"provider": "echo", "prefix": "I heard"}])
    result, _, _ = await run_call(agent, registry, silence(0.5) + speech_like(1.0) + silence(2.0))
    reply = result.timeline.turns[1]
    assert reply.providers["llm"] == "echo"
    assert reply.heard_text == "I heard: what time is it."


async def test_concurrent_calls_share_providers_but_nothing_else() -> None:
    import anyio

    registry = fake_registry()
    agents = [
        fake_agent(registry, stt=[{"provider": "scripted-stt", "lines": [f"question {i}"]}],
                   llm=[{"provider": "echo"}])
        for i in range(4)
    ]
    results: dict[int, object] = {}
    from voiceflow.runtime.pool import ProviderPool

    pool = ProviderPool(registry)

    async def one(i: int) -> None:
        result, _, _ = await run_call(agents[i], registry, silence(0.3 * i) + speech_like(1.0) + silence(2.0), pool=pool)
        results[i] = result

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(one, i)
    for i in range(4):
        reply = results[i].timeline.turns[1]  # type: ignore[attr-defined]
        assert reply.heard_text == f"You said: question {i}."
    assert len({id(p) for p in pool._instances.values()}) == len(pool._instances)


async def test_max_call_length_says_goodbye_and_ends() -> None:
    registry = fake_registry()
    agent = fake_agent(registry, unhappy_paths={"max_call_seconds": 4, "max_call_goodbye": "Time is up."})
    result, _, _ = await run_call(agent, registry, speech_like(1.0) + silence(1.0) + speech_like(6.0, seed=4) + silence(5.0))
    last = result.timeline.turns[-1]
    assert (last.kind, last.agent_text, last.outcome) == ("goodbye", "Time is up.", "completed")
    assert result.ended_because == "goodbye"
    assert last.marks["first_audio_out"] - last.origin < 4.5


async def test_the_same_call_on_the_real_clock_takes_real_time_and_agrees() -> None:
    registry = fake_registry()
    agent = fake_agent(registry, prompt={"system": "x"})
    caller = silence(0.2) + speech_like(0.6) + silence(1.2)
    started = time.monotonic()
    real, _, _ = await run_call(agent, registry, caller, clock="real", start="immediately", lead_in=0)
    wall = time.monotonic() - started
    virtual, _, _ = await run_call(agent, registry, caller, start="immediately", lead_in=0)
    assert wall >= 2.0  # the recording plays at its own pace
    m2e_real, m2e_virtual = real.timeline.turns[0].mouth_to_ear, virtual.timeline.turns[0].mouth_to_ear
    assert m2e_real is not None and m2e_virtual is not None
    assert abs(m2e_real - m2e_virtual) < 0.1  # the virtual clock reports what a live call would


async def test_the_llm_reads_the_system_prompt_while_the_greeting_plays() -> None:
    registry = fake_registry()
    agent = fake_agent(registry)
    _, _, pool = await run_call(agent, registry, silence(0.5) + speech_like(1.0) + silence(2.0))
    llm = next(p for p in pool._instances.values() if p.name == "scripted-llm")
    assert [[(m.role, m.content) for m in w] for w in llm.warmed] == [[("system", "You are a test.")]]  # type: ignore[attr-defined]
