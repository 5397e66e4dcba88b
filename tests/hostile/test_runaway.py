"""Providers that never stop: a voice that loops forever, a model that writes forever.

Neither fails in a way a deadline sees (output keeps coming), so each has a bound of its own: a
clause's audio may not run far past what its text could need, and a reply may not run past
MAX_REPLY_CHARS. The caller is silent after one question, so nothing but the bounds ends them.
"""

from __future__ import annotations

import anyio
import pytest
from test_fault_matrix import make_agent, registry

from harness import run_call
from voiceflow.runtime.reply import runaway_seconds
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.turns.replies import MAX_REPLY_CHARS

pytestmark = pytest.mark.anyio

ONE_QUESTION = silence(0.3) + speech_like(1.0) + silence(400.0)


async def test_a_voice_that_never_stops_hands_over_to_the_next_one() -> None:
    reg = registry()
    agent = make_agent(reg, "looping", "tts", "endless", fallback=True)
    with anyio.fail_after(60):
        result, _, _ = await run_call(agent, reg, ONE_QUESTION)
    reply = next(t for t in result.timeline.turns if t.kind == "reply")
    assert reply.outcome == "completed", result.timeline.as_dict()
    assert any("of audio for" in f and "faulty-tts" in f for f in reply.fallbacks), reply.fallbacks
    assert reply.providers["tts"] == "faulty-tts"  # it served first, then handed over
    # The handover came at the bound, not minutes later.
    limit = runaway_seconds("It is noon, more or less.")
    assert reply.marks["reply_heard"] - reply.marks["first_audio_out"] < limit + 5


async def test_a_model_that_never_stops_is_cut_at_the_reply_limit() -> None:
    reg = registry()
    agent = make_agent(reg, "chatty", "llm", "endless")
    with anyio.fail_after(120):
        result, _, _ = await run_call(agent, reg, ONE_QUESTION)
    reply = next(t for t in result.timeline.turns if t.kind == "reply")
    assert reply.outcome == "completed", result.timeline.as_dict()
    assert MAX_REPLY_CHARS < len(reply.agent_text) < MAX_REPLY_CHARS + 100
    assert f"llm: reply cut at {MAX_REPLY_CHARS} characters" in reply.fallbacks
    assert result.ended_because in ("end of input", "goodbye")  # the long silence after it: re-prompts
