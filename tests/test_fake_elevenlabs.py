"""The fake ElevenLabs server speaks ElevenLabs' wire format, checked with plain clients (the
``websockets`` library, ``httpx``) rather than the provider.

(tests/plugins/test_elevenlabs.py drives it through the provider.)
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voiceflow.testing._fake_elevenlabs_voice import normalise
from voiceflow.testing.fake_elevenlabs import FakeElevenLabs, Fault

pytestmark = pytest.mark.anyio

KEY = "xi-fake-wire-0123456789"


def url(server: FakeElevenLabs, **query: str) -> str:
    params = {"model_id": "eleven_flash_v2_5", "output_format": "pcm_16000", **query}
    return (f"{server.websocket_url}/v1/text-to-speech/voice1/stream-input?"
            + "&".join(f"{k}={v}" for k, v in params.items()))


async def speak(socket: ClientConnection, *texts: str, schedule: list[int] | None = None) -> list[dict[str, Any]]:
    opening: dict[str, Any] = {"text": " "}
    if schedule is not None:
        opening["generation_config"] = {"chunk_length_schedule": schedule}
    await socket.send(json.dumps(opening))
    for text in texts:
        await socket.send(json.dumps({"text": text}))
    return [json.loads(raw) async for raw in socket]


@pytest.fixture
async def server() -> Any:
    async with FakeElevenLabs(api_key=KEY, handshake_delay=0.0, ttfb=0.0, chunk_interval=0.0) as fake:
        yield fake


async def test_stream_input_buffers_by_schedule_and_aligns_with_the_audio(server: FakeElevenLabs) -> None:
    text = "The first part is long enough to be cut here, and then more words follow it. "
    async with connect(url(server, sync_alignment="true"), additional_headers={"xi-api-key": KEY}) as socket:
        messages = await speak(socket, text, "", schedule=[50, 500])
    assert socket.close_code == 1000
    assert messages[-1] == {"audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None}
    audio = messages[:-1]
    assert all(set(m) == {"audio", "isFinal", "alignment", "normalizedAlignment"} for m in audio)
    record = server.requests[0]
    # Cut at the first word boundary after 50 characters; the rest at the end of input.
    assert record.segments == [" The first part is long enough to be cut here, and ",
                               "then more words follow it. "]
    pcm = b"".join(base64.b64decode(m["audio"]) for m in audio)
    spoken = sum(len(normalise(s)[0]) for s in record.segments)
    assert len(pcm) == spoken * 60 * 16 * 2  # 60 ms a character, 16 samples a ms, 2 bytes a sample
    # sync_alignment: every message aligns the characters starting in its own audio, from its start.
    chars = [c for m in audio for c in m["alignment"]["chars"]]
    assert "".join(chars) == "".join(record.segments)
    for m in audio:
        duration = len(base64.b64decode(m["audio"])) / 32
        assert all(0 <= start < duration for start in m["alignment"]["charStartTimesMs"])
    assert "".join(c for m in audio for c in m["normalizedAlignment"]["chars"]) == "".join(
        normalise(s)[0] for s in record.segments)


async def test_without_sync_alignment_each_part_is_aligned_once(server: FakeElevenLabs) -> None:
    server.ms_per_char = 50
    async with connect(url(server, output_format="pcm_22050"), additional_headers={"xi-api-key": KEY}) as socket:
        messages = await speak(socket, "Two words ", "", schedule=[50])
    audio = messages[:-1]
    assert audio[0]["alignment"]["chars"] == list(" Two words ")
    assert audio[0]["alignment"]["charStartTimesMs"] == [i * 50 for i in range(11)]
    assert all(m["alignment"] is None for m in audio[1:])
    assert sum(len(base64.b64decode(m["audio"])) for m in audio) == 11 * (50 * 22050 // 1000) * 2


async def test_a_wrong_key_closes_the_socket_with_policy_violation(server: FakeElevenLabs) -> None:
    async with connect(url(server), additional_headers={"xi-api-key": "xi-wrong"}) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await speak(socket, "Hello ", "")
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "Invalid API key (key xi-wrong)"  # leak_key_in_errors
    assert not server.requests[0].authorized


async def test_an_idle_socket_is_closed_with_elevenlabs_message(server: FakeElevenLabs) -> None:
    server.inactivity_timeout = 0.3
    async with connect(url(server), additional_headers={"xi-api-key": KEY}) as socket:
        await socket.send(json.dumps({"text": " "}))
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert 0.25 < time.monotonic() - started < 2.0
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("Have not received a new text input within the timeout of 0.3 seconds")


@pytest.mark.parametrize(("fault", "check"), [
    (Fault("disconnect", after=2), "dropped"),
    (Fault("malformed", after=1, detail="json"), "json"),
    (Fault("malformed", after=1, detail="base64"), "base64"),
    (Fault("malformed", after=1, detail="odd"), "odd"),
])
async def test_stream_input_faults(server: FakeElevenLabs, fault: Fault, check: str) -> None:
    server.fail_next(fault)
    received: list[str] = []
    async with connect(url(server), additional_headers={"xi-api-key": KEY}) as socket:
        await socket.send(json.dumps({"text": " "}))
        await socket.send(json.dumps({"text": "A sentence long enough for several audio messages. "}))
        await socket.send(json.dumps({"text": ""}))
        try:
            with anyio.fail_after(2):
                while len(received) < (2 if check in ("json", "base64") else 3) or check == "odd":
                    raw = await socket.recv()
                    assert isinstance(raw, str)
                    received.append(raw)
        except ConnectionClosed as exc:
            assert check in ("dropped", "odd")
            if check == "dropped":
                assert exc.rcvd is None  # no close frame: the TCP connection just went
    if check == "dropped":
        assert len(received) == 2
    elif check == "json":
        with pytest.raises(ValueError):
            json.loads(received[1])
    elif check == "base64":
        with pytest.raises(ValueError):
            base64.b64decode(json.loads(received[1])["audio"], validate=True)
    else:
        sizes = [len(base64.b64decode(json.loads(r)["audio"] or "")) for r in received]
        assert sizes[1] % 2 == 1 and sum(sizes) % 2 == 1 and json.loads(received[-1])["isFinal"] is True


async def test_http_stream_is_a_pcm_body(server: FakeElevenLabs) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        ok = await client.post("/v1/text-to-speech/voice1/stream", params={"output_format": "pcm_16000"},
                               json={"text": "Hi there", "model_id": "eleven_flash_v2_5"},
                               headers={"xi-api-key": KEY})
        refused = await client.post("/v1/text-to-speech/voice1/stream", json={"text": "Hi"},
                                    headers={"xi-api-key": "nope"})
        mp3 = await client.post("/v1/text-to-speech/voice1/stream", json={"text": "Hi"},
                                headers={"xi-api-key": KEY})
        server.voices = {"voice2"}
        missing = await client.post("/v1/text-to-speech/voice1/stream", params={"output_format": "pcm_16000"},
                                    json={"text": "Hi"}, headers={"xi-api-key": KEY})
    assert ok.status_code == 200 and ok.headers["content-type"] == "audio/pcm"
    assert len(ok.content) == len("hi there") * 60 * 16 * 2
    assert refused.status_code == 401
    assert refused.json() == {"detail": {"status": "invalid_api_key", "message": "Invalid API key (key nope)"}}
    assert mp3.status_code == 400  # the fake speaks only PCM
    assert missing.status_code == 404 and missing.json()["detail"]["status"] == "voice_not_found"
    assert server.requests[0].model_id == "eleven_flash_v2_5" and server.requests[0].finished_at is not None


async def test_stop_releases_a_hung_synthesis() -> None:
    fake = FakeElevenLabs(api_key=KEY, handshake_delay=0.0, fault=Fault("hang"))
    await anyio.to_thread.run_sync(fake.start)
    async with connect(url(fake), additional_headers={"xi-api-key": KEY}) as socket:
        await socket.send(json.dumps({"text": " "}))
        await socket.send(json.dumps({"text": "Never spoken. "}))
        await socket.send(json.dumps({"text": ""}))
        started = time.monotonic()
        await anyio.to_thread.run_sync(fake.stop)
        assert time.monotonic() - started < 5.0
        with pytest.raises(ConnectionClosed):
            await socket.recv()


def test_importable_without_starlette_or_uvicorn() -> None:
    code = """
import sys
for blocked in ("starlette", "uvicorn"):
    sys.modules[blocked] = None
from voiceflow.testing.fake_elevenlabs import FakeElevenLabs, Fault
FakeElevenLabs(fault=Fault("hang"))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
