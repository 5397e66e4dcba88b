"""Overload: a process whose event loop runs late, or whose calls take their audio late, refuses
new calls (busy) instead of taking every call down with them, and admits again once it has
caught up; on a real uvicorn on 127.0.0.1 with real websockets clients. Also: audio frames are
not deflated."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Literal, cast

import anyio
import pytest
from test_ws_admission import SlowVoice, refusal
from websockets.asyncio.client import connect

from harness import fake_agent
from voiceflow.frames import AudioFrame
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import VADEvent, VADStream
from voiceflow.runtime.session import Session
from voiceflow.serving.api import RefusalReason, Refused
from voiceflow.serving.audio_lag import AudioLag
from voiceflow.serving.call_ceiling import GROW_EVERY, CallCeiling
from voiceflow.serving.host import AgentHost, ServerState
from voiceflow.serving.loop_lag import TICK, LoopLag
from voiceflow.testing import fakes
from voiceflow.testing.fakes import EnergyVAD, EnergyVADConfig, silence, speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import Cue, WsCaller, greeting_heard

pytestmark = pytest.mark.anyio


class StarvedVADConfig(EnergyVADConfig):
    provider: Literal["starved-vad"] = "starved-vad"  # type: ignore[assignment]


class StarvedVAD(EnergyVAD):
    """The energy VAD, each 20 ms frame taking 40 ms to judge: a detector whose worker threads get
    half the core they need, while the event loop itself stays idle."""

    name = "starved-vad"
    config_model = StarvedVADConfig  # type: ignore[assignment]

    def create_stream(self) -> VADStream:
        stream = super().create_stream()
        judge = stream.process

        async def slowly(frame: AudioFrame) -> VADEvent | None:
            await anyio.sleep(0.04)
            return judge(frame)

        stream.aprocess = slowly  # type: ignore[method-assign]
        return stream


@hookimpl
def register_providers(register: Any) -> None:
    register(StarvedVAD)


def registry() -> PluginRegistry:
    return PluginRegistry(plugins=[fakes, sys.modules["test_ws_admission"], sys.modules[__name__]])


def ws_agent(reg: PluginRegistry, **overrides: Any) -> Any:
    return fake_agent(reg, transport={"provider": "websocket"}, **overrides)


def starved_agent(reg: PluginRegistry) -> Any:
    """A WebSocket agent whose VAD falls behind its caller, refusing calls at 0.2 s of audio lag."""
    return ws_agent(reg, vad=[{"provider": "starved-vad"}], serving={"max_audio_lag": 0.2},
                    stt=[{"provider": "scripted-stt", "lines": ["what time is it"] * 4}])


class Call:
    def __init__(self, late: float) -> None:
        self.caller_audio_lag = late


def test_the_audio_lag_is_the_median_over_the_calls_in_progress() -> None:
    """Overload delays every call alike; one call's frames can look late for its own reasons (a
    jittery phone network), and must not close the process to everyone else."""
    lag = AudioLag()
    assert lag.recent() == 0.0  # no calls: nothing is late
    with contextlib.ExitStack() as stack:
        for late in [0.01] * 37 + [2.0] * 3:  # three calls on a bad network
            stack.enter_context(lag.tracking(cast(Session, Call(late))))
        assert lag.recent() == pytest.approx(0.01)
        for _ in range(37):
            stack.enter_context(lag.tracking(cast(Session, Call(0.5))))  # a process falling behind
        assert lag.recent() == pytest.approx(0.5)
    assert lag.recent() == 0.0  # the calls are over


async def test_calls_whose_audio_is_taken_late_make_the_server_refuse_new_ones() -> None:
    """The loop keeps up, so its lag says nothing; the call in progress falls behind its caller
    (its VAD takes 40 ms a 20 ms frame), and that is what admission sees."""
    assert SlowVoice  # (its plugin module is part of the registry)
    reg = registry()
    agent = starved_agent(reg)
    async with served_agents([agent], reg) as server:
        url = server.ws_url(agent.name)
        async with anyio.create_task_group() as tg:
            caller = WsCaller(url, [Cue(speech_like(3.0) + silence(1.0), when=greeting_heard)])
            tg.start_soon(caller.run)
            with anyio.fail_after(30):
                while (body := (await server.get("/readyz"))[1])["audio_lag_ms"] <= 200:
                    await anyio.sleep(0.05)
            assert body["loop_lag_ms"] < 100  # the loop itself is not behind
            refused, code = await refusal(url)
            assert refused["code"] == "busy" and "audio is taken" in refused["message"], refused
            assert code == 1013
            tg.cancel_scope.cancel()
        with anyio.fail_after(30):
            while (await server.get("/readyz"))[1]["audio_lag_ms"] > 0:
                await anyio.sleep(0.05)  # the late call is gone: nothing is late any more


def test_the_lag_is_the_recent_95th_percentile_and_a_stall_counts_while_it_lasts() -> None:
    lag = LoopLag(window=2.0)
    for i in range(100):
        lag.note(10.0 + i * TICK, 0.3 if i in (10, 50) else 0.001)
    now = 10.0 + 99 * TICK
    assert lag.recent(now) == pytest.approx(0.001)  # two late wake-ups in 100 are not overload
    for i in range(100, 110):
        lag.note(10.0 + i * TICK, 0.2)
    assert lag.recent(10.0 + 109 * TICK) == pytest.approx(0.2)  # ten in 110 are
    assert lag.recent(10.0 + 109 * TICK + 0.5) == pytest.approx(0.49)  # the probe has not run: a stall
    assert lag.recent(20.0) == pytest.approx(0.0)  # nothing recent: an idle, healthy loop (no samples)


async def test_a_server_running_late_refuses_new_calls_until_it_catches_up() -> None:
    reg = registry()
    agent = ws_agent(reg, serving={"max_loop_lag": 0.2},
                     stt=[{"provider": "scripted-stt", "lines": ["what time is it"] * 2}])
    async with served_agents([agent], reg) as server:
        url = server.ws_url(agent.name)
        time.sleep(0.6)  # the whole process stalls, as it does when too many calls share its loop
        first, code = await refusal(url)
        assert first["code"] == "busy" and "overloaded" in first["message"] and first["retry_after"] > 0, first
        assert code == 1013
        with anyio.fail_after(30):
            while (await server.get("/readyz"))[1]["loop_lag_ms"] > 100:
                await anyio.sleep(0.1)
        report = await WsCaller(url, [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]).run()
    assert report.hangup is not None and report.close_code == 1000
    assert report.turns_ended("reply")[0]["outcome"] == "completed"


async def test_with_the_check_off_a_late_server_still_admits() -> None:
    reg = registry()
    agent = ws_agent(reg, serving={"max_loop_lag": None},
                     stt=[{"provider": "scripted-stt", "lines": ["what time is it"]}])
    async with served_agents([agent], reg) as server:
        time.sleep(0.6)
        report = await WsCaller(server.ws_url(agent.name), [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]).run()
    assert report.hangup is not None and report.close_code == 1000


async def test_audio_frames_are_not_deflated_even_when_the_client_offers_it() -> None:
    reg = registry()
    agent = ws_agent(reg)
    async with served_agents([agent], reg) as server:
        async with connect(server.ws_url(agent.name)) as ws:  # websockets offers permessage-deflate
            assert ws.request is not None and "permessage-deflate" in ws.request.headers.get(
                "Sec-WebSocket-Extensions", "")
            assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers


def test_a_planned_pause_counts_as_one_slow_frame_not_as_a_stall_in_progress() -> None:
    """A scheduled full collection holds the loop; the calls that knocked meanwhile are admitted
    as it ends, before the probe's next tick, so the pause must not read as a stall."""
    unplanned, planned = LoopLag(window=2.0), LoopLag(window=2.0)
    for lag in (unplanned, planned):
        for i in range(100):
            lag.note(10.0 + i * TICK, 0.001)
    ended = 10.0 + 99 * TICK + 0.15  # the loop was held 150 ms after the last tick
    assert unplanned.recent(ended) == pytest.approx(0.14)  # unexplained: a stall while it lasts
    planned.held(0.15, at=ended)
    assert planned.recent(ended) == pytest.approx(0.001)  # explained: one slow frame in a hundred


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_overload_cuts_the_call_limit_to_nine_tenths_of_the_calls_then_it_grows_back() -> None:
    clock = Clock()
    ceiling = CallCeiling(clock)
    assert ceiling.allows(500) and ceiling.limit is None  # never overloaded: no limit of its own
    ceiling.overloaded(0)
    assert ceiling.limit is None  # overloaded with no call: nothing to learn from
    ceiling.overloaded(150)
    assert ceiling.limit == 135
    assert not ceiling.allows(149)  # calls end down to the limit before another is taken
    clock.now += 10.0
    ceiling.overloaded(140)  # still coming down to the last cut: not cut again
    assert ceiling.limit == 135
    assert ceiling.allows(134)
    ceiling.overloaded(135)  # overloaded at the limit: cut again
    assert ceiling.limit == 121
    clock.now += 1.0
    ceiling.overloaded(121)  # too soon after a cut for the signals to show its effect
    assert ceiling.limit == 121
    assert ceiling.allows(120) and not ceiling.allows(121)  # at the limit, keeping up: wait
    clock.now += GROW_EVERY
    assert ceiling.allows(121) and ceiling.limit == 133  # grows by a tenth
    assert not ceiling.allows(133)
    clock.now += GROW_EVERY
    ceiling.overloaded(2)
    assert ceiling.limit == 1
    for _ in range(3):
        clock.now += GROW_EVERY
        assert ceiling.allows(ceiling.limit)
    assert ceiling.limit == 4  # at least one call a step


async def test_an_overloaded_server_takes_fewer_calls_until_they_keep_up() -> None:
    """The first caller's VAD falls behind: the next is refused and the server learns to take
    no more than one call; once that one has ended and nothing is late, it takes the next."""
    assert SlowVoice
    reg = registry()
    slow = starved_agent(reg)
    async with served_agents([slow], reg) as server:
        url = server.ws_url(slow.name)
        async with anyio.create_task_group() as tg:
            tg.start_soon(WsCaller(url, [Cue(speech_like(3.0) + silence(1.0), when=greeting_heard)]).run)
            with anyio.fail_after(30):
                while (await server.get("/readyz"))[1]["audio_lag_ms"] <= 200:
                    await anyio.sleep(0.05)
            refused, _ = await refusal(url)
            assert "overloaded" in refused["message"], refused
            body = (await server.get("/readyz"))[1]
            assert body["learned_limit"] == 1 and body["calls"] == 1, body
            tg.cancel_scope.cancel()
        with anyio.fail_after(30):
            while (await server.get("/readyz"))[1]["calls"]:
                await anyio.sleep(0.05)
        assert (await server.get("/readyz"))[1]["audio_lag_ms"] == 0
        # Keeping up now: one call (the learned limit) is taken. (Its VAD is the slow one too, so
        # it hangs up after the greeting: that it is admitted is what this checks.)
        report = await WsCaller(url, [], hang_up_when=greeting_heard).run()
        assert report.turns_ended("greeting") and report.close_code == 1000, report


def test_at_the_learned_limit_a_call_is_refused_busy_saying_so_and_the_place_counts_across_agents() -> None:
    reg = registry()
    state = ServerState()
    first, second = (AgentHost(fake_agent(reg, name=name), cast(Any, None), state) for name in ("a", "b"))
    slot = first.admit()
    assert state.calls == 1
    assert learned_gauge(state) == []  # never overloaded: no sample
    state.ceiling.overloaded(2)  # learned: 90 % of two calls
    assert learned_gauge(state) == [1]
    with pytest.raises(Refused) as refused:
        second.admit()  # the other agent's call shares the process
    assert refused.value.reason is RefusalReason.BUSY and "takes 1 calls for now" in str(refused.value)
    slot.release()
    assert state.calls == 0
    second.admit().release()


def learned_gauge(state: ServerState) -> list[float]:
    from voiceflow.metrics.prometheus import _LiveCollector
    from voiceflow.runtime.pool import ProviderPool

    families = _LiveCollector(state, ProviderPool(registry()), lambda: []).collect()
    [family] = [f for f in families if f.name == "voiceflow_calls_learned_limit"]
    return [sample.value for sample in family.samples]
