"""Barge-in with a voice that reports its alignment: the context keeps exactly what was spoken.

The reply's voice starts with two seconds of silence (as real voices pad, and long pauses happen).
The caller talks over it before any word is said. Estimating the heard words in proportion to the
audio played would credit the caller with words they never heard; the voice's own alignment says
none were spoken.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import fake_agent, fake_registry, run_call
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

REPLY = "one two three four five six seven eight nine ten"
CALLER = silence(0.3) + speech_like(0.8) + silence(1.2) + speech_like(1.0, seed=1) + silence(3.0)


async def call(alignment: bool) -> Any:
    registry = fake_registry()
    agent = fake_agent(
        registry,
        prompt={"system": "Be brief."},
        stt=[{"provider": "scripted-stt", "lines": ["count for me", "stop"]}],
        llm=[{"provider": "scripted-llm", "replies": [REPLY, "Okay."]}],
        tts=[{"provider": "tone", "lead_silence": 2.0, "alignment": alignment}],
    )
    result, _, pool = await run_call(agent, registry, CALLER, start="immediately", lead_in=0)
    return result.timeline.turns[0], pool


async def test_with_alignment_nothing_unspoken_enters_the_context() -> None:
    reply, pool = await call(alignment=True)
    assert reply.outcome == "interrupted"
    played = reply.marks["interrupted"] - reply.marks["first_audio_out"]
    assert played < 2.0  # the caller cut in during the silence (checked, so the test means something)
    assert reply.heard_text == ""
    llm = next(p for p in pool.instances() if p.name == "scripted-llm")
    assert not [m for m in llm.requests[-1] if m.role == "assistant"]  # type: ignore[attr-defined]


async def test_without_alignment_the_proportional_estimate_credits_unheard_words() -> None:
    reply, _ = await call(alignment=False)
    assert reply.outcome == "interrupted"
    assert reply.heard_text and REPLY.startswith(reply.heard_text.rstrip("…"))


def test_an_aligned_clause_cut_mid_word_keeps_only_whole_words() -> None:
    from voiceflow.runtime.reply import Clause

    clause = Clause("the capital is Paris", queued=16_000, heard=8_000)
    clause.alignment = [(4_000, 3), (8_000, 13), (16_000, 20)]  # "the", "the capital i"…, all
    assert clause.heard_share() == "the capital"  # "i" of "is" was being said: not a word heard
    clause.heard = 16_000
    assert clause.heard_share() == "the capital is Paris"
    clause.alignment, clause.heard = None, 8_000
    assert clause.heard_share() == "the capital"  # proportional: half the audio, half the words
