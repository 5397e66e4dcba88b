"""The ElevenLabs TTS failing: every fault of the fake ElevenLabs server through the fallback chain,
and whole calls on the virtual clock that speak through ElevenLabs or fall back to another voice.

(tests/plugins/test_elevenlabs.py covers streaming, the spare socket and alignment.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest
from test_elevenlabs import CLAUSE, FAST, KEY, TRANSPORTS, config, prepared

from harness import fake_agent, fake_registry, run_call
from voiceflow.clock import RealClock
from voiceflow.frames import TTSAudio
from voiceflow.providers import ProviderError, ProviderUnavailable
from voiceflow.runtime.chain import Chain, StageFailed
from voiceflow.testing.fake_elevenlabs import FakeElevenLabs, Fault
from voiceflow.testing.fakes import silence, speech_like
from voiceflow_elevenlabs import ElevenLabsTTS

pytestmark = pytest.mark.anyio



async def collect(tts: ElevenLabsTTS, text: str = CLAUSE) -> list[TTSAudio]:
    async with aclosing(tts.synthesize(text)) as stream:  # type: ignore[type-var]
        return [chunk async for chunk in stream]


def seconds(chunks: list[TTSAudio]) -> float:
    return sum(len(c.pcm) for c in chunks) / 32_000


async def wait_until(predicate: Any, limit: float = 3.0) -> None:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < limit, "condition never became true"
        await anyio.sleep(0.002)


@pytest.fixture
async def server() -> AsyncIterator[FakeElevenLabs]:
    async with FakeElevenLabs(api_key=KEY, handshake_delay=0.15, ttfb=0.05, chunk_ms=100,
                              chunk_interval=0.01) as fake:
        yield fake


# --- faults ------------------------------------------------------------------------------------

FAULTS = [
    pytest.param("both", Fault("auth"), "the API key was refused", id="auth"),
    pytest.param("both", Fault("quota"), "out of credits (quota exceeded", id="quota"),
    pytest.param("both", Fault("status", status=429), "rate limited or too many concurrent requests", id="429"),
    pytest.param("both", Fault("status", status=500), "server error", id="500"),
    pytest.param("both", Fault("hang"), "no output within 0.5 s", id="hang"),
    pytest.param("both", Fault("slow_first_byte", seconds=3.0), "no output within 0.5 s", id="slow-first-byte"),
    pytest.param("websocket", Fault("disconnect"), "dropped the connection before any audio", id="ws-disconnect"),
    pytest.param("http", Fault("disconnect"), "closed the connection mid-clause", id="http-disconnect"),
    pytest.param("websocket", Fault("malformed", detail="json"), "malformed message (not JSON)", id="ws-broken-json"),
    pytest.param("websocket", Fault("malformed", detail="base64"), "malformed audio (not base64)", id="ws-bad-base64"),
    pytest.param("both", Fault("malformed", detail="odd", after=2), "audio ending mid-sample", id="odd-bytes"),
]
CASES = [
    pytest.param(transport, *case.values, id=f"{transport}-{case.id}")
    for case in FAULTS for transport in TRANSPORTS if case.values[0] in ("both", transport)
]


async def run_chain(tts: ElevenLabsTTS, text: str = CLAUSE) -> tuple[list[TTSAudio], float]:
    chain = Chain("tts", [tts], RealClock())
    chunks: list[TTSAudio] = []
    start = time.monotonic()
    stream = chain.stream(lambda p: p.synthesize(text), nonempty=True, substantive=lambda c: bool(c.pcm))
    async with aclosing(stream):
        async for chunk in stream:
            chunks.append(chunk)
    return chunks, time.monotonic() - start


@pytest.mark.parametrize(("transport", "only", "fault", "expected"), CASES)
async def test_each_fault_is_a_clear_error_within_the_deadlines(
    server: FakeElevenLabs, transport: str, only: str, fault: Fault, expected: str
) -> None:
    server.fail_next(fault)
    tts = await prepared(config(server, transport=transport))
    try:
        with pytest.raises(StageFailed) as failed:
            await run_chain(tts)
        failed_at = time.monotonic()
        chunks, _ = await run_chain(tts)  # the next clause is served normally
    finally:
        await tts.aclose()
    text = str(failed.value)
    assert expected in text, text
    assert KEY not in text and KEY[:12] not in text  # the fake quotes the key in every error
    assert seconds(chunks) > 3.0
    first = server.syntheses[0]
    # Within the deadlines: the first audio's, plus (once audio flowed) the clause's own length.
    assert failed_at - first.received_at < FAST["first_byte"] + FAST["idle"] + 1.0
    if fault.kind in ("hang", "slow_first_byte", "malformed"):
        await wait_until(lambda: first.disconnected_at is not None or first.finished_at is not None)


async def test_an_unknown_voice_is_named(server: FakeElevenLabs) -> None:
    server.voices = {"someone-else"}
    for transport in TRANSPORTS:
        tts = await prepared(config(server, transport=transport, voice_id="nobody123"))
        try:
            with pytest.raises(ProviderUnavailable, match=r"voice 'nobody123' not found .*check voice_id"):
                await collect(tts)
        finally:
            await tts.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_wrong_key_is_refused_and_never_quoted(server: FakeElevenLabs, transport: str) -> None:
    wrong = "xi-wrong-9876543210zyxwvutsrq"
    tts = await prepared(config(server, transport=transport, api_key=wrong))
    try:
        with pytest.raises(ProviderUnavailable) as refused:
            await collect(tts)
    finally:
        await tts.aclose()
    assert "elevenlabs: the API key was refused" in str(refused.value)
    assert wrong not in str(refused.value) and refused.value.__suppress_context__


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_service_that_is_down_is_named_not_fatal_at_prepare(transport: str) -> None:
    async with FakeElevenLabs() as gone:
        url = gone.base_url
    tts = await prepared(config(base_url=url, transport=transport))  # no request at prepare
    try:
        with pytest.raises(ProviderError, match=r"cannot reach (ws|http)://127\.0\.0\.1:\d+ \(connection refused"):
            await collect(tts)
    finally:
        await tts.aclose()


# --- whole calls on the virtual clock -------------------------------------------------------------

CALLER = silence(0.3) + speech_like(1.0) + silence(3.0)
ANSWER = "It is noon, more or less."


def entry(fake: FakeElevenLabs, **fields: Any) -> dict[str, Any]:
    return {"provider": "elevenlabs", "base_url": fake.base_url, "api_key": KEY, "timeouts": FAST, **fields}


async def call_with(tts: list[dict[str, Any]]) -> Any:
    reg = fake_registry()  # the built-ins (elevenlabs among them) and the scripted providers
    agent = fake_agent(reg, tts=tts)
    with anyio.fail_after(30):
        result, _, pool = await run_call(agent, reg, CALLER)
    await pool.aclose()
    replies = [t for t in result.timeline.turns if t.kind == "reply"]
    assert replies, result.timeline.as_dict()
    return replies[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_whole_call_speaks_through_elevenlabs(transport: str) -> None:
    async with FakeElevenLabs(api_key=KEY) as fake:
        turn = await call_with([entry(fake, transport=transport)])
    assert turn.outcome == "completed" and turn.heard_text == ANSWER, turn.as_dict()
    assert turn.providers.get("tts") == "elevenlabs" and not turn.fallbacks
    said = [r.text.strip() for r in fake.syntheses]
    assert said == ["Hello there.", ANSWER], said
    # TTFB through the fake: at least its 50 ms, on the call's (virtual) clock.
    assert 0.05 <= turn.marks["tts_first_audio"] - turn.marks["tts_request"] < 1.0


async def test_a_whole_call_falls_back_to_the_tone_when_the_key_is_refused() -> None:
    async with FakeElevenLabs(api_key=KEY) as fake:
        turn = await call_with([entry(fake, api_key="xi-revoked-00000000000000"), {"provider": "tone"}])
    assert turn.outcome == "completed" and turn.heard_text == ANSWER, turn.as_dict()
    assert turn.providers.get("tts") == "tone"
    assert any("tts/elevenlabs: ProviderUnavailable: elevenlabs: the API key was refused" in f
               for f in turn.fallbacks), turn.fallbacks
    assert not any("xi-revoked" in f for f in turn.fallbacks)


async def test_a_whole_call_goes_on_after_a_mid_stream_disconnect() -> None:
    async with FakeElevenLabs(api_key=KEY, fault=Fault("disconnect", after=3)) as fake:
        turn = await call_with([entry(fake), {"provider": "tone"}])
    assert turn.outcome == "completed", turn.as_dict()
    assert turn.providers.get("tts") == "elevenlabs"  # it started the clause; the tone finished it
    assert any("dropped the connection mid-clause" in f for f in turn.fallbacks), turn.fallbacks
    assert turn.heard_text == ANSWER
