"""Overload: a process whose event loop runs late refuses new calls (busy) instead of taking
every call down with them, and admits again once it has caught up; on a real uvicorn on
127.0.0.1 with real websockets clients. Also: audio frames are not deflated."""

from __future__ import annotations

import time

import anyio
import pytest
from test_ws_admission import refusal, registry, ws_agent
from websockets.asyncio.client import connect

from voiceflow.serving.loop_lag import TICK, LoopLag
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import Cue, WsCaller, greeting_heard

pytestmark = pytest.mark.anyio


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
