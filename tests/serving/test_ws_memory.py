"""A served call gives its audio buffers back when it ends, not when the collector next makes a
full pass: a call's objects refer to each other (so only a full collection frees them), and
with 100 callers a serving process grew ~650 KB for every call it had served."""

from __future__ import annotations

import gc

import pytest
from test_ws_call import question, ws_agent

from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.echo import EchoCanceller
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import WsCaller

pytestmark = pytest.mark.anyio


def alive(kind: type) -> list[object]:
    return [o for o in gc.get_objects() if isinstance(o, kind)]


async def test_ended_calls_hold_no_audio_buffers() -> None:
    registry, agent = ws_agent()
    gc.collect()
    gc.disable()  # nothing is freed behind the test's back: what is released, is released by the call
    try:
        async with served_agents([agent], registry) as server:
            for _ in range(1):
                report = await WsCaller(server.ws_url(agent.name), question()).run()
                outcomes = [turn["outcome"] for turn in report.turns_ended()]
                assert len(outcomes) >= 2 and set(outcomes) == {"completed"}
            tails = [tail for tail in alive(AudioTail) if isinstance(tail, AudioTail)]
            echoes = [echo for echo in alive(EchoCanceller) if isinstance(echo, EchoCanceller)]
        # The calls' objects are still there (their cycles await a full collection) ...
        assert tails and echoes
        # ... but none still holds its audio.
        assert all(len(tail._ring) == 0 for tail in tails)
        assert all(echo._reference._buf.size <= 2 and echo._caller._buf.size <= 2 for echo in echoes)
    finally:
        gc.enable()
        gc.collect()
