"""The ElevenLabs TTS through real clients (``websockets``, the ``elevenlabs`` SDK) against the fake
ElevenLabs server.

Every clause crosses a real socket in the real wire format, so what is tested is the client side
as much as the provider: audio passed on as it arrives, the alignment turned into the right text
marks, the spare socket saving the handshake, barge-in closing the socket at once. Faults through
the fallback chain and whole calls are in tests/plugins/test_elevenlabs_calls.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from voiceflow.frames import TextMark, TTSAudio
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderKind, ProviderUnavailable
from voiceflow.testing._fake_elevenlabs_voice import Speech, normalise
from voiceflow.testing.conformance import cancel_after_first, check_tts
from voiceflow.testing.fake_elevenlabs import FakeElevenLabs, Fault
from voiceflow_elevenlabs import ElevenLabsConfig, ElevenLabsTTS, sockets
from voiceflow_elevenlabs.alignment import ClauseAligner
from voiceflow_elevenlabs.errors import scrub

pytestmark = pytest.mark.anyio

KEY = "xi-test-SECRET0123456789abcdefXYZ"
MS_PER_CHAR = 60
CLAUSE = "Hello there, I have 3 cats and a dog; they like to sleep all afternoon in the sun."
FAST = {"connect": 0.5, "first_byte": 0.5, "idle": 0.5, "prepare": 5.0}
TRANSPORTS = ["websocket", "http"]


def config(server: FakeElevenLabs | None = None, **fields: Any) -> ElevenLabsConfig:
    data: dict[str, Any] = {"provider": "elevenlabs", "api_key": KEY, "timeouts": FAST}
    if server is not None:
        data["base_url"] = server.base_url
    data.update(fields)
    return ElevenLabsConfig.model_validate(data)


async def prepared(cfg: ElevenLabsConfig) -> ElevenLabsTTS:
    tts = ElevenLabsTTS(cfg)
    await tts.prepare()
    return tts


async def collect(tts: ElevenLabsTTS, text: str = CLAUSE) -> tuple[list[TTSAudio], list[float]]:
    start = time.monotonic()
    chunks: list[TTSAudio] = []
    stamps: list[float] = []
    async with aclosing(tts.synthesize(text)) as stream:  # type: ignore[type-var]
        async for chunk in stream:
            chunks.append(chunk)
            stamps.append(time.monotonic() - start)
    return chunks, stamps


def seconds(chunks: list[TTSAudio]) -> float:
    return sum(len(c.pcm) for c in chunks) / 32_000


async def wait_until(predicate: Any, limit: float = 3.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < limit, "condition never became true"
        await anyio.sleep(0.002)
    return time.monotonic() - start


@pytest.fixture
async def server() -> AsyncIterator[FakeElevenLabs]:
    async with FakeElevenLabs(api_key=KEY, handshake_delay=0.15, ttfb=0.05, chunk_ms=100,
                              chunk_interval=0.01, ms_per_char=MS_PER_CHAR) as fake:
        yield fake


def test_registered_as_builtin_plugin() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert registry.get(ProviderKind.TTS, "elevenlabs").cls is ElevenLabsTTS


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_streams_audio_as_it_arrives(server: FakeElevenLabs, transport: str) -> None:
    tts = await prepared(config(server, transport=transport, model_id="eleven_turbo_v2_5",
                                voice_settings={"stability": 0.4, "speed": 1.1}, optimize_streaming_latency=3,
                                chunk_length_schedule=[50, 100]))
    try:
        chunks, stamps = await collect(tts)
    finally:
        await tts.aclose()
    spoken, _ = normalise(" " + CLAUSE + " ")
    assert {c.sample_rate for c in chunks} == {16_000} and all(len(c.pcm) % 2 == 0 for c in chunks)
    # All the audio, exactly as long as the fake's voice makes it (it speaks 60 ms a character).
    expected = len(spoken.strip() if transport == "http" else spoken) * MS_PER_CHAR / 1000
    assert abs(seconds(chunks) - expected) < 0.13, (seconds(chunks), expected)
    assert len(chunks) > 10
    assert stamps[0] < stamps[-1] / 3, f"first chunk at {stamps[0]:.3f} s, last at {stamps[-1]:.3f} s"
    request = server.syntheses[-1]
    assert request.api_key == KEY and request.model_id == "eleven_turbo_v2_5"
    assert request.output_format == "pcm_16000" and request.voice_settings == {"stability": 0.4, "speed": 1.1}
    if transport == "websocket":
        assert request.init is not None and request.init["text"] == " "
        assert request.init["generation_config"] == {"chunk_length_schedule": [50, 100]}
        assert request.query["sync_alignment"] == "true" and request.query["inactivity_timeout"] == "20"
        assert request.text == CLAUSE + " " and request.ended and request.close_code == 1000
        assert len(request.segments) >= 2  # cut by the schedule: the first part went out early
        assert any(c.marks for c in chunks)
    else:
        assert request.query["optimize_streaming_latency"] == "3" and request.text == CLAUSE
        assert not any(c.marks for c in chunks)  # the HTTP endpoint has no alignment


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_conformance(server: FakeElevenLabs, transport: str) -> None:
    tts = await prepared(config(server, transport=transport))
    try:
        report = await check_tts(tts, cancel_within=0.25)
    finally:
        await tts.aclose()
    assert report.items > 2 and report.ttfb < report.total / 2
    cancelled = server.syntheses[1]
    await wait_until(lambda: cancelled.disconnected_at is not None)
    assert cancelled.finished_at is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_barge_in_closes_the_stream_at_once(server: FakeElevenLabs, transport: str) -> None:
    server.chunk_interval = 0.2  # mid-clause for seconds
    tts = await prepared(config(server, transport=transport))
    try:
        cancelled = await cancel_after_first(lambda: tts.synthesize(CLAUSE))
        cancelled_at, stopped = cancelled.at, cancelled.latency
        request = server.syntheses[-1]
        await wait_until(lambda: request.disconnected_at is not None)
    finally:
        await tts.aclose()
    assert request.disconnected_at is not None
    seen = request.disconnected_at - cancelled_at
    print(f"\n{transport}: control back {stopped * 1000:.1f} ms after the cancel; the server saw the "
          f"close {seen * 1000:.1f} ms after it")
    # Relative to the stream's own pace: the cancel lands well inside one 200 ms chunk interval.
    assert stopped < server.chunk_interval / 2 and seen < server.chunk_interval / 2
    assert request.audio_messages <= 2 and request.finished_at is None


# --- the spare socket ----------------------------------------------------------------------------


async def ttfb(tts: ElevenLabsTTS, text: str) -> float:
    _, stamps = await collect(tts, text)
    return stamps[0]


async def test_a_pre_opened_socket_saves_the_handshake(server: FakeElevenLabs) -> None:
    server.handshake_delay = 0.3
    tts = await prepared(config(server))
    try:
        first = await ttfb(tts, "This is the first clause.")
        asked_second = time.monotonic()
        second = await ttfb(tts, "And this is the second one.")
        third = await ttfb(tts, "A third, straight after.")
    finally:
        await tts.aclose()
    print(f"\nTTFB through the fake (0.3 s handshake): first clause {first * 1000:.0f} ms, second "
          f"(pre-opened socket) {second * 1000:.0f} ms, third {third * 1000:.0f} ms")
    assert second < first - server.handshake_delay / 2 and third < first - server.handshake_delay / 2
    used = server.syntheses
    assert [r.text.strip() for r in used] == ["This is the first clause.", "And this is the second one.",
                                              "A third, straight after."]
    accepted = used[1].accepted_at
    assert accepted is not None and accepted < asked_second  # opened while the first clause played
    await wait_until(lambda: all(r.disconnected_at or r.finished_at for r in server.sockets))
    unused = [r for r in server.sockets if not r.synthesised]
    assert len(unused) == 1 and unused[0].disconnected_at is not None  # the last spare, closed by aclose()


async def test_without_pre_open_every_clause_pays_the_handshake(server: FakeElevenLabs) -> None:
    server.handshake_delay = 0.3
    tts = await prepared(config(server, pre_open=False))
    try:
        first = await ttfb(tts, "This is the first clause.")
        second = await ttfb(tts, "And this is the second one.")
    finally:
        await tts.aclose()
    assert second > server.handshake_delay and first > server.handshake_delay
    assert len(server.sockets) == 2 and all(r.synthesised for r in server.sockets)


async def test_a_spare_is_dropped_before_the_service_would_close_it(
    server: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "EXPIRY_MARGIN", 4.5)  # inactivity_timeout 5 s → dropped after 1 s
    tts = await prepared(config(server, inactivity_timeout=5))
    try:
        await collect(tts, "One clause.")
        spare = await wait_until_spare(server)
        await wait_until(lambda: spare.disconnected_at is not None, limit=3.0)
        assert spare.close_code is None  # closed by the client, not timed out by the service
        await collect(tts, "Another clause, later.")
    finally:
        await tts.aclose()
    later = server.syntheses[-1]
    assert later is not spare and later.accepted_at is not None and spare.disconnected_at is not None
    assert later.accepted_at > spare.disconnected_at  # a fresh socket, not the dropped spare


async def test_a_spare_found_dead_is_replaced_before_anything_is_heard(server: FakeElevenLabs) -> None:
    tts = await prepared(config(server))
    try:
        await collect(tts, "One clause.")
        await wait_until_spare(server)
        server.fail_next(Fault("disconnect"))  # the spare is dropped as its clause starts
        chunks, _ = await collect(tts, "Second clause, spoken anyway.")
    finally:
        await tts.aclose()
    assert seconds(chunks) > 1.0
    tries = [r for r in server.syntheses if r.text.strip() == "Second clause, spoken anyway."]
    assert [r.fault for r in tries] == ["disconnect", None] and tries[1].finished_at is not None


async def test_a_spare_the_service_timed_out_is_not_used(server: FakeElevenLabs) -> None:
    tts = await prepared(config(server))
    try:
        server.inactivity_timeout = 0.3  # shorter than the provider believes (20 s)
        await collect(tts, "One clause.")
        spare = await wait_until_spare(server)
        await wait_until(lambda: spare.close_code == 1008)
        chunks, _ = await collect(tts, "Another clause.")
    finally:
        await tts.aclose()
    assert seconds(chunks) > 0.5 and server.syntheses[-1] is not spare


async def wait_until_spare(server: FakeElevenLabs) -> Any:
    await wait_until(lambda: any(not r.synthesised and r.accepted_at for r in server.sockets))
    return next(r for r in server.sockets if not r.synthesised)


# --- alignment ---------------------------------------------------------------------------------


def heard_by(marks: list[TextMark], t: float) -> int:
    """Characters of the clause spoken by ``t`` seconds into its audio, from the marks."""
    return max((m.chars for m in marks if m.at <= t + 1e-9), default=0)


def truth_by(text: str, t: float) -> int:
    """The same, from the fake's voice: 60 ms per normalised character, after the opening space."""
    _, spans = normalise(" " + text)
    spoken = [i for i, (_, end) in enumerate(spans[1:]) if end * MS_PER_CHAR / 1000 <= t + 1e-9]
    return spoken[-1] + 1 if spoken else 0


@pytest.mark.parametrize("fields", ["both", "normalized"])
async def test_alignment_marks_say_which_characters_were_spoken(server: FakeElevenLabs, fields: Any) -> None:
    server.alignment = fields
    tts = await prepared(config(server))
    try:
        chunks, _ = await collect(tts)
    finally:
        await tts.aclose()
    marks = [m for c in chunks for m in c.marks]
    assert [m.chars for m in marks] == sorted({m.chars for m in marks})  # strictly increasing
    assert [m.at for m in marks] == sorted(m.at for m in marks)
    total = seconds(chunks)
    half = heard_by(marks, total / 2)
    print(f"\n{fields}: at half the audio ({total / 2:.2f} s), {half} of {len(CLAUSE)} characters: "
          f"{CLAUSE[:half]!r}")
    assert abs(half / len(CLAUSE) - 0.5) < 0.1
    for t in (0.3, total / 3, total / 2, 2 * total / 3):
        exact = truth_by(CLAUSE, t)
        # "3" is said as "three": only the normalised alignment blurs where in it we are.
        slack = 0 if fields == "both" else 2
        assert abs(heard_by(marks, t) - exact) <= slack, (t, heard_by(marks, t), exact)
    assert heard_by(marks, total) >= len(CLAUSE) - 1


async def test_marks_ride_on_the_audio_they_describe(server: FakeElevenLabs) -> None:
    tts = await prepared(config(server))
    try:
        chunks, _ = await collect(tts)
    finally:
        await tts.aclose()
    played = 0.0
    for chunk in chunks:
        end = played + len(chunk.pcm) / 32_000
        # sync_alignment: each mark belongs to a character that starts in this chunk's audio (and
        # lasts 60 ms, or 300 ms for the "3" said as "three").
        assert all(played <= m.at - MS_PER_CHAR / 1000 + 1e-6 < end + 0.25 for m in chunk.marks), (played, chunk.marks)
        played = end


def test_marks_from_per_part_alignment_and_odd_spacing() -> None:
    """Without sync_alignment the first frame of each generated part aligns the whole part, from
    the part's first sample; the offset is the audio before it. Extra spaces in the clause and the
    socket's opening space in the alignment change nothing."""
    clause = "Two  parts, with   odd spacing and 42 digits."
    parts = [" Two parts, with odd spacing ", "and 42 digits. "]  # as the service cut them
    aligner = ClauseAligner(clause)
    received = 0
    marks: list[TextMark] = []
    for part in parts:
        for piece in Speech(part, rate=16_000, ms_per_char=MS_PER_CHAR).pieces(100, sync_alignment=False):
            marks += aligner.marks(piece.alignment, received / 32_000)
            received += len(piece.pcm)
    by_text = {clause[: m.chars]: round(m.at, 3) for m in marks}
    assert by_text["Two"] == 0.24  # after the opening space (60 ms): three characters of 60 ms
    assert by_text["Two  parts,"] == round(11 * 0.06, 3)  # one space spoken, two in the clause
    first_part = len(normalise(parts[0])[0]) * 0.06
    assert by_text["Two  parts, with   odd spacing and"] == round(first_part + 3 * 0.06, 3)
    assert marks[-1].chars == len(clause)


def test_server_text_loses_the_key_and_long_pieces_of_it() -> None:
    cut = "Invalid API key (key " + KEY[:20]  # a close reason cut at 123 bytes, mid-key
    assert KEY[:12] not in scrub(cut, KEY) and scrub(cut, KEY).endswith("(key [redacted]")
    assert scrub(f"a {KEY} b", KEY) == "a [redacted] b"
    assert scrub("the key is short: xi-te", KEY) == "the key is short: xi-te"


async def test_calls_sharing_one_voice_at_once(server: FakeElevenLabs) -> None:
    tts = await prepared(config(server))
    results: dict[int, float] = {}

    async def speak(i: int) -> None:
        chunks, _ = await collect(tts, f"Call number {i} says this clause.")
        results[i] = seconds(chunks)

    try:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(speak, i)
    finally:
        await tts.aclose()
    assert sorted(results) == [0, 1, 2, 3] and all(s > 1.5 for s in results.values())
    assert len(server.syntheses) == 4


def test_http_mode_says_what_to_install_without_the_sdk() -> None:
    code = """
import sys
for blocked in ("elevenlabs", "httpx"):
    sys.modules[blocked] = None
import anyio
from voiceflow_elevenlabs import ElevenLabsTTS, ElevenLabsConfig
from voiceflow.providers import ProviderUnavailable
tts = ElevenLabsTTS(ElevenLabsConfig(provider="elevenlabs", transport="http", api_key="k"))
try:
    anyio.run(tts.prepare)
except ProviderUnavailable as exc:
    assert "pip install 'voiceflow[cloud]'" in str(exc), exc
else:
    raise SystemExit("prepare() worked without the SDK")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


# --- keys and settings -----------------------------------------------------------------------------


async def test_the_key_comes_from_the_environment_when_unset(
    server: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    for unset in (None, ""):  # "": ${ELEVENLABS_API_KEY:-} with the variable unset
        with pytest.raises(ProviderUnavailable, match=r"no API key: set api_key .* ELEVENLABS_API_KEY"):
            await prepared(config(server, api_key=unset))
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    tts = await prepared(config(server, api_key=None))
    try:
        chunks, _ = await collect(tts, "Hi.")
    finally:
        await tts.aclose()
    assert chunks and server.syntheses[-1].api_key == KEY


@pytest.mark.parametrize(("fields", "message"), [
    ({"chunk_length_schedule": [40, 120]}, "greater than or equal to 50"),
    ({"chunk_length_schedule": [50, 501]}, "less than or equal to 500"),
    ({"chunk_length_schedule": []}, "at least 1 item"),
    ({"base_url": "ftp://example.com"}, "http:// or https:// URL"),
    ({"base_url": "https://example.com/v1"}, "root of the API only"),
    ({"base_url": "http://user:pw@example.com"}, "must not hold a user or password"),
    ({"voice_id": "../../etc"}, "should match pattern"),
    ({"optimize_streaming_latency": 5}, "less than or equal to 4"),
    ({"voice_settings": {"speed": 2.0}}, "less than or equal to 1.2"),
    ({"voice_settings": {"stabilty": 0.5}}, "Extra inputs are not permitted"),
    ({"inactivity_timeout": 500}, "less than or equal to 180"),
    ({"output_format": "mp3_44100"}, "Input should be 'pcm_16000'"),
])
def test_config_refuses_mistakes(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**fields)


def test_config_urls() -> None:
    assert config().endpoint == "https://api.elevenlabs.io"
    assert config().websocket_endpoint == "wss://api.elevenlabs.io"
    local = config(base_url="http://127.0.0.1:8080/")
    assert local.endpoint == "http://127.0.0.1:8080" and local.websocket_endpoint == "ws://127.0.0.1:8080"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_on_a_phone_line_elevenlabs_speaks_ulaw_itself(transport: str) -> None:
    """The phone's own μ-law reaches the runtime as is, with its alignment, from sockets of its
    own (a spare μ-law socket is never used for a 16 kHz call, nor the other way round)."""
    async with FakeElevenLabs(api_key=KEY, ms_per_char=MS_PER_CHAR) as server:
        tts = await prepared(config(server, transport=transport))
        async with aclosing(tts.synthesize_for(CLAUSE, "mulaw/8000")) as stream:  # type: ignore[type-var]
            phone = [chunk async for chunk in stream]
        plain, _ = await collect(tts)
        await tts.aclose()
    assert phone and all(c.encoding == "mulaw" and c.sample_rate == 8000 for c in phone)
    assert all(c.encoding == "pcm16" and c.sample_rate == 16000 for c in plain)
    seconds = sum(len(c.pcm) for c in phone) / 8000
    assert seconds == pytest.approx(sum(len(c.pcm) for c in plain) / 32000, rel=0.01)
    if transport == "websocket":
        assert phone[-1].marks or any(c.marks for c in phone)
    formats = {r.output_format for r in server.requests if r.text or r.segments}
    assert formats == {"ulaw_8000", "pcm_16000"}
