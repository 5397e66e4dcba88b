"""A served call is freed by reference counting the moment it ends: it leaves nothing in reference
cycles for the collector. A busy serving process makes full collections rare, so every cycle
a call left (its cancelled tasks' frames, its turn manager's policies pointing back at it) stayed
until one came: under 200 WebSocket callers the process grew ~27 MB a minute. Nor does the
server keep what a call leaves: its result goes to the observers and is gone."""

from __future__ import annotations

import gc
from collections import Counter
from types import CoroutineType, FrameType, TracebackType

import anyio
import pytest
from test_ws_call import LONG_REPLY, question, ws_agent

from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.session import CallResult
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import Cue, WsCaller, greeting_heard

pytestmark = pytest.mark.anyio


def ours(obj: object) -> bool:
    """Part of a call: voiceflow's objects, or a task's frames and exceptions."""
    module = type(obj).__module__ or ""
    return (
        module.startswith("voiceflow")
        or isinstance(obj, FrameType | TracebackType | CoroutineType | BaseException)
        or type(obj).__name__ == "Task"
    )


async def test_an_ended_call_leaves_no_reference_cycles() -> None:
    """The measured call is interrupted once (barge-in cancels a reply) before it ends."""
    registry, agent = ws_agent(
        stt=[{"provider": "scripted-stt", "lines": ["what time is it", "tell me everything", "stop please"]}],
        llm=[{"provider": "scripted-llm", "replies": ["It is noon.", LONG_REPLY, "Sure."]}],
    )
    barging_in = [
        Cue(speech_like(0.8) + silence(0.1), when=greeting_heard),
        Cue(speech_like(1.0, seed=1) + silence(0.1), after_agent_audio=1.0),
    ]
    gc.collect()
    gc.disable()  # nothing is freed behind the test's back: what goes, goes by reference counting
    try:
        async with served_agents([agent], registry) as server:
            await WsCaller(server.ws_url(agent.name), question()).run()  # a warm-up call
            with anyio.fail_after(10):
                while len(server.results) < 1:
                    await anyio.sleep(0.01)
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)  # from here the collector keeps what it would free
            report = await WsCaller(server.ws_url(agent.name), barging_in).run()
            assert [turn["outcome"] for turn in report.turns_ended()] == ["completed", "interrupted", "completed"]
            with anyio.fail_after(10):
                while len(server.results) < 2:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.1)  # the call's last tasks finish after its result is handed on
            assert not [o for o in gc.get_objects() if type(o) is AudioTail]
            # Nor does the server keep the finished calls' results (only the test's harness did).
            assert len(server.results) == 2
            server.results.clear()
            assert not [o for o in gc.get_objects() if type(o) is CallResult]
            gc.collect()
            left = Counter(type(o).__qualname__ for o in gc.garbage if ours(o))
        assert not left, f"an ended call left these in reference cycles: {left.most_common(12)}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()


def _connection_protocols() -> int:
    """The ``websockets`` library's per-connection state (uvicorn's WebSocket implementation)."""
    return sum(1 for o in gc.get_objects()
               if type(o).__name__ == "ServerProtocol" and type(o).__module__.startswith("websockets"))


@pytest.mark.parametrize("collect_every", [0.3, None])
async def test_the_connections_own_cycle_is_freed_by_the_full_pass_on_its_clock(collect_every: float | None) -> None:
    """Not ours to break: after the socket closes, the library's protocol object and its parser
    generator refer to each other. The serving process's full pass on a clock frees them; left to
    the (raised) thresholds alone, they stay (here the collector is off, as good as never)."""
    registry, agent = ws_agent()
    gc.collect()
    gc.disable()
    try:
        async with served_agents([agent], registry, collect_every=collect_every) as server:
            for _ in range(2):
                await WsCaller(server.ws_url(agent.name), question()).run()
            with anyio.fail_after(10):
                while len(server.results) < 2:
                    await anyio.sleep(0.01)
            with anyio.move_on_after(3.0):  # the same wait either way; with the pass, ten periods
                while _connection_protocols():
                    await anyio.sleep(0.05)
            left = _connection_protocols()
        if collect_every is None:
            assert left == 2  # both ended calls' connections, in their cycles
        else:
            assert left == 0
    finally:
        gc.enable()
        gc.collect()
