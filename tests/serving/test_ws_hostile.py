"""A client that breaks the protocol, goes quiet or vanishes ends its own call, cleanly, with an
error it can read; a well-behaved call beside it goes on untouched."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness import fake_agent, fake_registry
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import Served, served_agents
from voiceflow.testing.ws_caller import Cue, WsCaller, greeting_heard

pytestmark = pytest.mark.anyio

FORMAT = {"encoding": "pcm16", "sample_rate": 16000, "channels": 1}
START = json.dumps({"type": "start", "format": FORMAT})
MAX_BYTES = 4096

CASES: list[tuple[list[bytes | str], str, int]] = [
    # (what the client sends, in order; the error code; the close code)
    ([START, "{not json"], "bad_message", 1007),
    ([START, json.dumps({"type": "dance"})], "bad_message", 1007),
    ([START, json.dumps({"type": "mark", "id": "seven"})], "bad_message", 1007),
    ([START, START], "bad_message", 1007),
    ([START, b"\x01\x02\x03"], "bad_audio", 1007),
    ([START, bytes(MAX_BYTES + 2)], "too_big", 1009),
    ([b"\0\0" * 160], "bad_audio", 1007),
    ([json.dumps({"type": "mark", "id": 1})], "bad_message", 1007),
    ([json.dumps({"type": "start", "format": {**FORMAT, "encoding": "mulaw"}})], "unsupported_format", 1003),
    ([json.dumps({"type": "start", "format": {**FORMAT, "sample_rate": 96000}})], "unsupported_format", 1003),
    ([json.dumps({"type": "start", "format": {**FORMAT, "channels": 2}})], "unsupported_format", 1003),
    ([json.dumps({"type": "start"})], "bad_message", 1007),
]


def agent(**overrides: Any) -> tuple[Any, Any]:
    registry = fake_registry()
    return registry, fake_agent(
        registry, transport={"provider": "websocket"},
        serving={"max_message_bytes": MAX_BYTES, "idle_timeout": 1.0},
        stt=[{"provider": "scripted-stt", "lines": ["what time is it"] * 4}], **overrides,
    )


async def misbehave(url: str, messages: list[bytes | str]) -> tuple[list[dict[str, Any]], int | None]:
    """Send ``messages`` (after the greeting has begun, if the call started); return what came back."""
    events: list[dict[str, Any]] = []
    async with connect(url, max_size=None) as ws:
        try:
            for message in messages:
                await ws.send(message)
                if message == START and len(events) == 0:
                    while not any(e.get("type") == "turn" for e in events):  # the call is under way
                        data = await ws.recv()
                        if isinstance(data, str):
                            events.append(json.loads(data))
            while True:
                data = await ws.recv()
                if isinstance(data, str):
                    events.append(json.loads(data))
        except ConnectionClosed:
            pass
        return events, ws.close_code


async def a_good_call(server: Served, name: str) -> Any:
    cues = [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]
    return await WsCaller(server.ws_url(name), cues).run()


async def test_bad_messages_end_only_their_own_calls() -> None:
    """Every kind of bad message at once, each on its own call, beside two good calls."""
    registry, cfg = agent()
    async with served_agents([cfg], registry) as server:
        outcomes: dict[int, tuple[list[dict[str, Any]], int | None]] = {}
        good: list[Any] = []

        async def hostile(index: int) -> None:
            outcomes[index] = await misbehave(server.ws_url(cfg.name), CASES[index][0])

        async def neighbour() -> None:
            good.append(await a_good_call(server, cfg.name))

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(neighbour)
            for index in range(len(CASES)):
                tg.start_soon(hostile, index)
        assert (await server.get("/readyz"))[1]["agents"][cfg.name]["calls"] == 0
    for index, (messages, code, close) in enumerate(CASES):
        events, close_code = outcomes[index]
        errors = [e for e in events if e["type"] == "error"]
        assert len(errors) == 1 and errors[0]["code"] == code and errors[0]["message"], (messages, events)
        assert close_code == close, messages
    for report in good:
        assert report.turns_ended("reply")[0]["outcome"] == "completed" and report.close_code == 1000


async def test_a_client_that_goes_quiet_is_hung_up_after_the_idle_timeout() -> None:
    registry, cfg = agent()
    async with served_agents([cfg], registry) as server:
        async with connect(server.ws_url(cfg.name)) as ws:
            await ws.send(START)
            events = []
            with pytest.raises(ConnectionClosed):
                while True:
                    data = await ws.recv()
                    if isinstance(data, str):
                        events.append(json.loads(data))
        assert events[-1]["type"] == "error" and events[-1]["code"] == "idle"
        assert ws.close_code == 1000
        assert [r.ended_because for r in server.results] == ["caller hung up"]


async def test_a_client_that_vanishes_mid_call_ends_its_call_and_no_other() -> None:
    registry, cfg = agent()
    async with served_agents([cfg], registry) as server:
        async with anyio.create_task_group() as tg:
            good: list[Any] = []

            async def neighbour() -> None:
                good.append(await a_good_call(server, cfg.name))

            tg.start_soon(neighbour)
            ws = await connect(server.ws_url(cfg.name))
            await ws.send(START)
            while True:  # until the greeting is under way
                data = await ws.recv()
                if isinstance(data, str) and "turn" in data:
                    break
            for _ in range(10):
                await ws.send(bytes(640))
            ws.transport.abort()  # no close frame: the connection just drops
            while not any(r.call_id != "" and r.ended_because == "caller hung up" for r in server.results):
                await anyio.sleep(0.05)
        assert good[0].turns_ended("reply")[0]["outcome"] == "completed" and good[0].close_code == 1000
        assert len(server.results) == 2
        assert (await server.get("/readyz"))[1]["agents"][cfg.name]["calls"] == 0
