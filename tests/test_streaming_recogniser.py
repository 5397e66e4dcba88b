"""The turn manager with a streaming recogniser: finals per phrase, one answer per finalize().

A recogniser such as Deepgram sends finals of its own accord, phrase by phrase; counting one final
per finalize() would end the turn on its first phrase. The turn waits for the final that answers
its finalize, collects the phrases before it, and never takes a late final of an earlier turn
for part of the current one.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import fake_agent, fake_registry, run_call
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio


def agent(stt: dict[str, Any], **overrides: Any) -> Any:
    registry = fake_registry()
    return registry, fake_agent(
        registry, prompt={"system": "Be brief."}, stt=[{"provider": "streaming-stt", **stt}],
        llm=[{"provider": "echo"}], **overrides,
    )


async def test_the_turn_collects_phrase_finals_and_ends_on_the_answer_to_finalize() -> None:
    registry, cfg = agent({"utterances": [["I would like", "to book", "a table for two"]], "phrase_gap": 0.2})
    result, _, _ = await run_call(cfg, registry, silence(0.3) + speech_like(1.2) + silence(3.0),
                                  start="immediately", lead_in=0)
    reply = result.timeline.turns[0]
    assert reply.user_text == "I would like to book a table for two"
    assert reply.heard_text == "You said: I would like to book a table for two."


async def test_a_late_answer_for_a_turn_given_up_on_never_lands_in_the_next_turn() -> None:
    # The first answer comes 3 s late (max_wait 1 s): the turn goes on without it; by the time
    # it arrives the caller is speaking again, and it must not join their new words.
    registry, cfg = agent(
        {"utterances": [["the late one"], ["the second question"]], "answer_delays": [3.0, 0.1]},
        turn_taking={"endpointing": {"max_wait": 1.0}},
    )
    caller = silence(0.3) + speech_like(1.0) + silence(2.5) + speech_like(1.5, seed=2) + silence(3.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    turns = [(t.kind, t.user_text) for t in result.timeline.turns]
    assert turns[0] == ("apology", "")
    assert result.timeline.turns[0].failure == "stt/streaming-stt: no final transcript within max_wait 1 s"
    assert turns[1] == ("reply", "the second question"), turns
