"""The fake Deepgram server itself, checked with plain clients (``websockets``, ``httpx``) against
Deepgram's wire format: what a provider's tests rely on it to do."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voiceflow.testing._fake_deepgram_speak import tone
from voiceflow.testing.fake_deepgram import FakeDeepgram, Fault
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

KEY = "dg-fake-key-0123456789"
LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1&interim_results=true&endpointing=300"


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


async def messages(ws: ClientConnection, until: str, limit: float = 5.0) -> list[dict[str, Any]]:
    """JSON messages until one of type ``until`` (inclusive)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit
    while not got or got[-1]["type"] != until:
        assert time.monotonic() < deadline, got
        message = await ws.recv()
        if isinstance(message, str):
            got.append(json.loads(message))
    return got


async def test_listen_results_finalize_and_close() -> None:
    async with FakeDeepgram(utterances=["hello there", "second"], api_key=KEY) as fake:
        async with connect(fake.websocket_url + LISTEN, additional_headers=auth()) as ws:
            await ws.send(silence(0.2) + speech_like(0.8) + silence(0.4))
            phrase = await messages(ws, "Results")
            while not phrase[-1]["is_final"]:
                phrase += await messages(ws, "Results")
            await ws.send(speech_like(0.5, seed=1))
            await ws.send(json.dumps({"type": "Finalize"}))
            answer = await messages(ws, "Results")
            while not answer[-1]["is_final"]:
                answer += await messages(ws, "Results")
            await ws.send(json.dumps({"type": "Finalize"}))  # nothing new: no answer at all
            await ws.send(json.dumps({"type": "CloseStream"}))
            closing = await messages(ws, "Metadata")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    final = phrase[-1]
    assert final["channel"]["alternatives"][0]["transcript"] == "hello there"
    assert final["speech_final"] and not final["from_finalize"]
    assert (final["start"], final["duration"]) == (0.0, pytest.approx(1.3, abs=0.02))  # through the silence
    assert [w["punctuated_word"] for w in final["channel"]["alternatives"][0]["words"]] == ["hello", "there"]
    assert any(not m.get("is_final", True) for m in phrase)  # interims first
    assert answer[-1]["from_finalize"] and answer[-1]["channel"]["alternatives"][0]["transcript"] == "second"
    assert answer[-1]["start"] == pytest.approx(1.3, abs=0.02)  # where the last final ended
    assert [m["type"] for m in closing] == ["Metadata"]  # the second Finalize got nothing
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    session = fake.listen_sessions[0]
    assert session.controls == ["Finalize", "Finalize", "CloseStream"] and session.closed_by == "server"
    assert session.audio_seconds == pytest.approx(1.9, abs=0.001)


async def test_a_wrong_key_is_refused_on_the_upgrade() -> None:
    async with FakeDeepgram(api_key=KEY) as fake:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(fake.websocket_url + LISTEN, additional_headers=auth("wrong-key-42")):
                pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["err_code"] == "INVALID_AUTH"
    assert "wrong-key-42" in refused.value.response.body.decode()  # it leaks, so providers must not


async def test_an_idle_socket_is_dropped_unless_kept_alive() -> None:
    async with FakeDeepgram(api_key=KEY, idle_timeout=0.3) as fake:
        async with connect(fake.websocket_url + LISTEN, additional_headers=auth()) as kept, \
                connect(fake.websocket_url + LISTEN, additional_headers=auth()) as idle:
            for _ in range(10):  # 1 s: more than three idle limits
                await kept.send(json.dumps({"type": "KeepAlive"}))
                await anyio.sleep(0.1)
            with pytest.raises(ConnectionClosed) as dropped:
                await idle.recv()
            assert fake.listen_sessions[0].closed_at is None
    assert dropped.value.rcvd is not None and dropped.value.rcvd.code == 1011
    assert "net0001" in dropped.value.rcvd.reason
    assert fake.listen_sessions[1].closed_by == "idle"


async def test_aura_rest_streams_the_tone_in_chunks() -> None:
    async with FakeDeepgram(api_key=KEY, chunk_bytes=1001) as fake:
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", fake.base_url + "/v1/speak?encoding=linear16&sample_rate=16000",
                                     json={"text": "Hi there."}, headers=auth()) as response:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            refused = await client.post(fake.base_url + "/v1/speak", json={"text": "x"}, headers=auth("nope"))
    assert response.status_code == 200 and body == tone("Hi there.", 16_000, fake.seconds_per_char)
    assert fake.speak_requests[0].chunks_sent == -(-len(body) // 1001)
    assert refused.status_code == 401 and refused.json()["err_code"] == "INVALID_AUTH"


async def test_aura_websocket_flush_and_clear() -> None:
    async with FakeDeepgram(api_key=KEY, chunk_interval=0.02) as fake:
        async with connect(fake.websocket_url + "/v1/speak?encoding=linear16&sample_rate=16000",
                           additional_headers=auth()) as ws:
            assert json.loads(await ws.recv())["type"] == "Metadata"
            await ws.send(json.dumps({"type": "Speak", "text": "Short."}))
            await ws.send(json.dumps({"type": "Flush"}))
            audio = b""
            while isinstance(message := await ws.recv(), bytes):
                audio += message
            assert json.loads(message) == {"type": "Flushed", "sequence_id": 1}
            await ws.send(json.dumps({"type": "Speak", "text": "A much longer sentence to be cut off."}))
            await ws.send(json.dumps({"type": "Flush"}))
            assert isinstance(await ws.recv(), bytes)
            await ws.send(json.dumps({"type": "Clear"}))
            while isinstance(message := await ws.recv(), bytes):
                pass
            assert json.loads(message) == {"type": "Cleared", "sequence_id": 2}
            await ws.send(json.dumps({"type": "Close"}))
    assert audio == tone("Short.", 16_000, fake.seconds_per_char)
    request = fake.speak_requests[0]
    assert request.controls == ["Speak", "Flush", "Speak", "Flush", "Clear", "Close"]
    assert (request.flushed, request.cleared) == (1, 1)


async def test_faults_apply_to_the_next_connection_of_their_endpoint() -> None:
    async with FakeDeepgram(api_key=KEY) as fake:
        fake.fail_next(Fault("disconnect", after=0), endpoint="listen")
        async with connect(fake.websocket_url + LISTEN, additional_headers=auth()) as ws:
            await ws.send(speech_like(0.5))
            with pytest.raises(ConnectionClosed) as dropped:
                await ws.recv()
        assert dropped.value.rcvd is None  # no close frame: the connection just went
        async with connect(fake.websocket_url + LISTEN, additional_headers=auth()) as ws:
            await ws.send(json.dumps({"type": "CloseStream"}))
            assert [m["type"] for m in await messages(ws, "Metadata")] == ["Metadata"]
    assert [s.fault for s in fake.listen_sessions] == ["disconnect", None]
