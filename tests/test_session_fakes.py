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
    # endpointing (0.45 s silence) + STT 0.1 + LLM 0.1 + TTS 0.05 is the floor; nothing stalls.
    assert 0.6 < m2e < 1.2, reply.as_dict()
    assert result.ended_because == "end of input"
    assert wall < m2e * 3 + 2  # idle time (greeting playout, trailing silence) was skipped
