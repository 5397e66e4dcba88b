"""Deepgram Aura through the real ``deepgram-sdk``, against the fake Deepgram server, over both
transports: the audio streams as it arrives, every chunk holds whole samples however the server
splits them, a websocket is reused from clause to clause, barge-in stops a clause at once (the
server sees Clear, or the HTTP stream close), and faults become key-free errors within the
chain's deadlines. Timing assertions compare the provider with the fake, never with fixed figures.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from voiceflow.clock import RealClock
from voiceflow.frames import TTSAudio
from voiceflow.providers import ProviderError, ProviderUnavailable
from voiceflow.runtime.chain import Chain, StageFailed
from voiceflow.testing._fake_deepgram_speak import tone
from voiceflow.testing.conformance import cancel_after_first, check_tts
from voiceflow.testing.fake_deepgram import FakeDeepgram, Fault
from voiceflow_deepgram import AuraConfig, DeepgramAura

pytestmark = pytest.mark.anyio

KEY = "dg-test-SECRET0123456789abcdefXYZ"
FAST = {"connect": 1.0, "first_byte": 1.0, "idle": 1.0, "prepare": 10.0}
TEXT = "Hello there, this is a clause of a reply, long enough to stream."
TRANSPORTS = ["websocket", "rest"]


def config(server: FakeDeepgram, transport: str, **fields: Any) -> AuraConfig:
    data: dict[str, Any] = {"provider": "deepgram-aura", "api_key": KEY, "base_url": server.base_url,
                            "websocket_url": server.websocket_url, "transport": transport, "timeouts": FAST}
    data.update(fields)
    return AuraConfig.model_validate(data)


async def prepared(server: FakeDeepgram, transport: str, **fields: Any) -> DeepgramAura:
    tts = DeepgramAura(config(server, transport, **fields))
    await tts.prepare()
    return tts


async def collect(tts: DeepgramAura, text: str = TEXT) -> tuple[list[TTSAudio], list[float]]:
    start = time.perf_counter()
    chunks: list[TTSAudio] = []
    stamps: list[float] = []
    async with aclosing(tts.synthesize(text)) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            stamps.append(time.perf_counter() - start)
    return chunks, stamps


async def wait_until(predicate: Any, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.002)


@pytest.fixture
async def server() -> AsyncIterator[FakeDeepgram]:
    # 3201 bytes: odd, so nearly every chunk boundary splits a sample.
    async with FakeDeepgram(api_key=KEY, ttfb=0.05, chunk_bytes=3201, chunk_interval=0.01) as fake:
        yield fake


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_audio_streams_in_whole_samples(server: FakeDeepgram, transport: str) -> None:
    tts = await prepared(server, transport)
    try:
        chunks, stamps = await collect(tts)
    finally:
        await tts.aclose()
    assert len(chunks) > 10 and all(c.sample_rate == 16_000 and len(c.pcm) % 2 == 0 for c in chunks)
    # The odd bytes were carried, never dropped: exactly the server's audio, in order.
    assert b"".join(c.pcm for c in chunks) == tone(TEXT, 16_000, server.seconds_per_char)
    assert stamps[0] < stamps[-1] / 3, f"first chunk at {stamps[0]:.3f} s, last at {stamps[-1]:.3f} s"
    request = server.speak_requests[-1]
    assert request.transport == transport and request.authorization == f"Token {KEY}"
    assert {k: request.query[k] for k in ("model", "encoding", "sample_rate")} == {
        "model": "aura-2-thalia-en", "encoding": "linear16", "sample_rate": "16000"}
    assert request.texts == [TEXT]


async def test_one_websocket_serves_clause_after_clause(server: FakeDeepgram) -> None:
    tts = await prepared(server, "websocket")
    try:
        for clause in ("First clause.", "Second one.", "And a third."):
            chunks, _ = await collect(tts, clause)
            assert b"".join(c.pcm for c in chunks) == tone(clause, 16_000, server.seconds_per_char)
        assert tts.pool is not None and tts.pool.opened == 1
    finally:
        await tts.aclose()
    assert len(server.speak_requests) == 1
    await wait_until(lambda: server.speak_requests[0].finished_at is not None)  # Close, on the server's thread
    assert server.speak_requests[0].controls == ["Speak", "Flush"] * 3 + ["Close"]
    assert server.speak_requests[0].flushed == 3


async def test_a_pooled_socket_the_server_dropped_is_replaced_before_any_audio(server: FakeDeepgram) -> None:
    server.fail_next(Fault("disconnect", seconds=0.3), endpoint="speak")  # drops the idle socket
    tts = await prepared(server, "websocket")
    try:
        await collect(tts, "First clause.")
        await wait_until(lambda: server.speak_requests[0].disconnected_at is not None)
        chunks, _ = await collect(tts, "Second one.")
    finally:
        await tts.aclose()
    assert b"".join(c.pcm for c in chunks) == tone("Second one.", 16_000, server.seconds_per_char)
    assert len(server.speak_requests) == 2 and server.speak_requests[1].texts == ["Second one."]


async def test_calls_at_once_each_get_their_own_socket(server: FakeDeepgram) -> None:
    tts = await prepared(server, "websocket")
    results: dict[str, bytes] = {}

    async def speak(text: str) -> None:
        chunks, _ = await collect(tts, text)
        results[text] = b"".join(c.pcm for c in chunks)

    try:
        async with anyio.create_task_group() as tg:
            for text in ("One call speaks.", "Another call, at the same time.", "And a third."):
                tg.start_soon(speak, text)
        await speak("Then one more.")  # reuses one of the three
        assert tts.pool is not None and tts.pool.opened == 3
    finally:
        await tts.aclose()
    assert all(audio == tone(text, 16_000, server.seconds_per_char) for text, audio in results.items())


async def test_socket_idle_seconds_zero_opens_one_socket_per_clause(server: FakeDeepgram) -> None:
    tts = await prepared(server, "websocket", socket_idle_seconds=0)
    try:
        for clause in ("One.", "Two."):
            await collect(tts, clause)
    finally:
        await tts.aclose()
    await wait_until(lambda: all(r.disconnected_at or r.finished_at for r in server.speak_requests))
    assert [r.controls for r in server.speak_requests] == [["Speak", "Flush", "Close"]] * 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_barge_in_stops_the_clause_at_once(server: FakeDeepgram, transport: str) -> None:
    server.chunk_interval = 0.05  # the server would go on for about 2 s
    tts = await prepared(server, transport)
    try:
        cancelled = await cancel_after_first(lambda: tts.synthesize(TEXT))
        cancelled_at, stopped = cancelled.at, cancelled.latency
        request = server.speak_requests[-1]
        if transport == "websocket":
            await wait_until(lambda: "Clear" in request.controls)
            seen = request.control_times[request.controls.index("Clear")] - cancelled_at
        else:
            await wait_until(lambda: request.disconnected_at is not None)
            assert request.disconnected_at is not None
            seen = request.disconnected_at - cancelled_at
        remaining = len(tone(TEXT, 16_000, server.seconds_per_char)) / server.chunk_bytes * server.chunk_interval
        assert stopped < remaining / 10 and seen < remaining / 10, (stopped, seen, remaining)
        assert request.finished_at is None and request.flushed == 0
        # The next clause gets its own audio only: what was in flight for the cut one is dropped.
        chunks, _ = await collect(tts, "Next.")
        assert b"".join(c.pcm for c in chunks) == tone("Next.", 16_000, server.seconds_per_char)
    finally:
        await tts.aclose()
    if transport == "websocket":
        assert len(server.speak_requests) == 1 and server.speak_requests[0].cleared == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_conformance(server: FakeDeepgram, transport: str) -> None:
    tts = await prepared(server, transport)
    try:
        report = await check_tts(tts)
    finally:
        await tts.aclose()
    assert report.items > 10 and report.ttfb < report.total / 3
    assert report.cancel_latency < report.total / 10


# --- faults: each is one clear ProviderError, within the entry's deadlines, without the key ----


async def run_chain(tts: DeepgramAura) -> list[TTSAudio]:
    chain = Chain("tts", [tts], RealClock())
    async with aclosing(chain.stream(lambda p: p.synthesize(TEXT), nonempty=True,
                                     substantive=lambda a: bool(a.pcm))) as stream:
        return [chunk async for chunk in stream]


FAULTS = [
    pytest.param("websocket", Fault("auth"), "the API key was refused (401)", id="ws-auth"),
    pytest.param("rest", Fault("auth"), "the API key was refused (401)", id="rest-auth"),
    pytest.param("websocket", Fault("hang"), "no output within 1 s", id="ws-hang"),
    pytest.param("rest", Fault("hang"), "no output within 1 s", id="rest-hang"),
    pytest.param("websocket", Fault("stall"), "no output within 1 s", id="ws-stall"),
    pytest.param("websocket", Fault("slow_first_byte", seconds=3.0), "no output within 1 s", id="ws-slow"),
    pytest.param("rest", Fault("slow_first_byte", seconds=3.0), "no output within 1 s", id="rest-slow"),
    pytest.param("websocket", Fault("disconnect", after=3), "ended the stream (dropped without a close frame)",
                 id="ws-disconnect"),
    pytest.param("rest", Fault("disconnect", after=3), "closed the connection mid-stream", id="rest-disconnect"),
    pytest.param("websocket", Fault("malformed", after=3), "sent a malformed message", id="ws-malformed"),
    pytest.param("websocket", Fault("error", after=3), "ended the stream (closed with 1011", id="ws-error"),
    pytest.param("rest", Fault("status", status=500), "server error 500", id="rest-500"),
    pytest.param("rest", Fault("status", status=429), "rate limited or out of credit", id="rest-429"),
    pytest.param("rest", Fault("status", status=400), "request refused (400)", id="rest-400"),
]


@pytest.mark.parametrize(("transport", "fault", "expected"), FAULTS)
async def test_each_fault_is_a_clear_error_within_the_deadlines(
    server: FakeDeepgram, transport: str, fault: Fault, expected: str
) -> None:
    server.fail_next(fault, endpoint="speak")
    tts = await prepared(server, transport)
    try:
        with pytest.raises(StageFailed) as failed:
            await run_chain(tts)
        # The provider (and its pool) serve the next clause normally.
        chunks = await run_chain(tts)
    finally:
        await tts.aclose()
    text = str(failed.value)
    assert expected in text, text
    assert KEY not in text and KEY[:12] not in text  # the fake quotes it in its error texts
    assert b"".join(c.pcm for c in chunks) == tone(TEXT, 16_000, server.seconds_per_char)


async def test_a_wrong_key_is_refused_and_never_quoted(server: FakeDeepgram) -> None:
    wrong = "dg-wrong-9876543210zyxwvutsrq"
    for transport in TRANSPORTS:
        tts = await prepared(server, transport, api_key=wrong)
        try:
            with pytest.raises(ProviderUnavailable) as refused:
                await collect(tts)
        finally:
            await tts.aclose()
        assert str(refused.value).startswith("deepgram: the API key was refused (401)")
        assert wrong not in str(refused.value) and refused.value.__suppress_context__


async def test_a_server_that_is_down_is_a_clear_error() -> None:
    async with FakeDeepgram() as gone:
        pass
    for transport in TRANSPORTS:
        tts = await prepared(gone, transport)
        try:
            with pytest.raises(ProviderError, match=r"cannot reach .*127\.0\.0\.1:\d+/v1/speak \(connection refused"):
                await collect(tts)
        finally:
            await tts.aclose()


def test_config_refuses_mistakes() -> None:
    from pydantic import ValidationError

    for fields, message in [
        ({"base_url": "ftp://example.com"}, "http(s):// or ws(s):// URL"),
        ({"base_url": "https://api.deepgram.com/v1"}, "without /v1"),
        ({"websocket_url": "ws://user:pw@example.com"}, "must not hold a user or password"),
        ({"sample_rate": 22050}, "Input should be 8000, 16000, 24000 or 48000"),
        ({"socket_idle_seconds": 1e9}, "less than or equal to 600"),
    ]:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            AuraConfig.model_validate({"provider": "deepgram-aura", **fields})
    cfg = AuraConfig(provider="deepgram-aura", base_url="http://10.0.0.5:8080/")
    assert (cfg.rest_root, cfg.websocket_root, cfg.is_official) == ("http://10.0.0.5:8080", "ws://10.0.0.5:8080", False)
    assert AuraConfig(provider="deepgram-aura").websocket_root == "wss://api.deepgram.com"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_on_a_phone_line_aura_speaks_mulaw_itself(transport: str) -> None:
    """Asked for the phone's own format, Aura's μ-law reaches the runtime as is (and the
    linear16 sockets are not reused for it)."""
    async with FakeDeepgram(api_key=KEY) as server:
        tts = await prepared(server, transport)
        async with aclosing(tts.synthesize_for(TEXT, "mulaw/8000")) as stream:
            chunks = [chunk async for chunk in stream]
        plain, _ = await collect(tts)
        await tts.aclose()
    assert chunks and all(c.encoding == "mulaw" and c.sample_rate == 8000 for c in chunks)
    assert b"".join(c.pcm for c in chunks) == tone(TEXT, 8000, server.seconds_per_char, "mulaw")
    assert all(c.encoding == "pcm16" for c in plain)
    queries = [request.query for request in server.speak_requests]
    assert {(q.get("encoding"), q.get("sample_rate")) for q in queries} == {("mulaw", "8000"), ("linear16", "16000")}


async def test_phone_audio_off_keeps_linear16() -> None:
    async with FakeDeepgram(api_key=KEY) as server:
        tts = await prepared(server, "rest", phone_audio=False)
        async with aclosing(tts.synthesize_for(TEXT, "mulaw/8000")) as stream:
            chunks = [chunk async for chunk in stream]
        await tts.aclose()
    assert chunks and all(c.encoding == "pcm16" and c.sample_rate == 16000 for c in chunks)
