"""A provider that keeps failing is skipped by every call of the process, then probed again."""

from __future__ import annotations

import anyio
import pytest
from test_fault_matrix import make_agent, registry

from harness import run_call
from voiceflow.runtime.pool import ProviderPool
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

TWO_QUESTIONS = silence(0.3) + speech_like(1.0) + silence(3.0) + speech_like(1.0, seed=2) + silence(3.0)


async def test_a_dead_voice_is_skipped_after_repeated_failures_and_probed_after_the_reset() -> None:
    reg = registry()
    pool = ProviderPool(reg)
    agent = make_agent(reg, "breaker", "tts", "hang_first_byte", fallback=True)
    agent = agent.model_copy(update={"tts": [
        agent.tts[0].model_copy(update={"circuit": agent.tts[0].circuit.model_copy(update={"reset_after": 1.0})}),
        agent.tts[1],
    ]})

    def skipped(turn: object) -> bool:
        return any("circuit open" in f for f in turn.fallbacks)  # type: ignore[attr-defined]

    def waited(turn: object) -> bool:
        return any("no output within" in f for f in turn.fallbacks)  # type: ignore[attr-defined]

    with anyio.fail_after(60):
        first, _, _ = await run_call(agent, reg, TWO_QUESTIONS, pool=pool)
        # Greeting and two replies each waited out the dead voice's deadline: that opens it.
        assert [waited(t) for t in first.timeline.turns] == [True, True, True]
        second, _, _ = await run_call(agent, reg, TWO_QUESTIONS, pool=pool)
        # The next call does not wait for it at all: every line goes straight to the backup.
        assert all(skipped(t) and not waited(t) for t in second.timeline.turns), second.timeline.as_dict()
        assert all(t.outcome == "completed" for t in second.timeline.turns)
        await anyio.sleep(1.1)  # past reset_after: one request probes it (and fails again)
        third, _, _ = await run_call(agent, reg, TWO_QUESTIONS, pool=pool)
        assert waited(third.timeline.turns[0]) and skipped(third.timeline.turns[1])
