"""The Deepgram providers through the real ``deepgram-sdk``, against the fake Deepgram server.

Every message crosses a real socket in Deepgram's wire format (the listen websocket's Results,
Finalize, KeepAlive and CloseStream; Aura's REST body and its Speak / Flush / Clear websocket), so
what is tested is the SDK's behaviour as well as the providers': recognition streams, each
finalize() is answered exactly once, an idle stream is kept open, a dropped one is reopened
without losing words, faults become key-free errors within the runtime's deadlines, and Aura's
audio streams and stops at once on barge-in. Timing assertions compare what the provider did with
what the fake was doing, never with fixed wall-clock figures.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from audio_fixtures import espeak_pcm, frames
from voiceflow.frames import Transcript
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderError, ProviderKind, ProviderUnavailable
from voiceflow.runtime.recognizer import Recognizer
from voiceflow.testing.conformance import check_stt
from voiceflow.testing.fake_deepgram import FakeDeepgram, Fault
from voiceflow.testing.fakes import ScriptedSTT, ScriptedSTTConfig, silence, speech_like
from voiceflow_deepgram import DeepgramAura, DeepgramSTT, DeepgramSTTConfig
from voiceflow_deepgram.listen import CLOSE_SECONDS, DeepgramStream

pytestmark = pytest.mark.anyio

KEY = "dg-test-SECRET0123456789abcdefXYZ"
FAST = {"connect": 2.0, "first_byte": 2.0, "idle": 2.0, "prepare": 10.0}
T0 = 100.0
"""Session audio time of the first frame: Deepgram's socket times must be mapped onto it."""


def stt_config(server: FakeDeepgram, **fields: Any) -> DeepgramSTTConfig:
    data: dict[str, Any] = {"provider": "deepgram", "api_key": KEY, "websocket_url": server.websocket_url,
                            "timeouts": FAST}
    data.update(fields)
    return DeepgramSTTConfig.model_validate(data)


async def open_stream(server: FakeDeepgram, **fields: Any) -> tuple[DeepgramSTT, DeepgramStream]:
    stt = DeepgramSTT(stt_config(server, **fields))
    await stt.prepare()
    return stt, await stt.open_stream()


class Reader:
    """Reads a stream's transcripts in the background, noting when each came."""

    def __init__(self, stream: DeepgramStream) -> None:
        self.stream = stream
        self.got: list[tuple[float, Transcript]] = []
        self.error: BaseException | None = None

    async def run(self) -> None:
        try:
            async for transcript in self.stream.transcripts():
                self.got.append((time.monotonic(), transcript))
        except ProviderError as exc:
            self.error = exc

    @property
    def transcripts(self) -> list[Transcript]:
        return [t for _, t in self.got]

    @property
    def finalized(self) -> list[Transcript]:
        return [t for t in self.transcripts if t.finalized]

    async def wait_for(self, predicate: Any, limit: float = 10.0) -> None:
        with anyio.fail_after(limit):
            while not predicate(self):
                await anyio.sleep(0.005)


async def send(stream: DeepgramStream, pcm: bytes, t0: float = T0, pace: float = 0.0) -> None:
    for frame in frames(pcm, t0):
        await stream.send(frame)
        if pace:
            await anyio.sleep(pace)


@pytest.fixture
async def server() -> AsyncIterator[FakeDeepgram]:
    async with FakeDeepgram(utterances=["what time is it", "and what is the date"], api_key=KEY) as fake:
        yield fake


def test_registered_as_builtin_plugins() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert registry.get(ProviderKind.STT, "deepgram").cls is DeepgramSTT
    assert registry.get(ProviderKind.TTS, "deepgram-aura").cls is DeepgramAura
    assert DeepgramStream.spontaneous_finals


# --- recognition ------------------------------------------------------------------------------


async def test_interims_phrase_finals_and_the_answer_to_finalize(server: FakeDeepgram) -> None:
    stt, stream = await open_stream(server)
    reader = Reader(stream)
    speech = silence(0.3) + speech_like(1.0) + silence(0.6) + speech_like(0.8, seed=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.run)
        await send(stream, speech)
        await stream.finalize()
        await reader.wait_for(lambda r: r.finalized)
        tg.cancel_scope.cancel()
    await stream.aclose()
    await stt.aclose()

    got = reader.transcripts
    finals = [t for t in got if t.is_final and t.text]
    assert [(t.text, t.finalized, t.speech_final) for t in finals] == [
        ("what time is it", False, True),  # Deepgram's endpointing: a phrase final of its own
        ("and what is the date", True, False),  # the answer to finalize()
    ]
    first_final = got.index(finals[0])
    assert any(not t.is_final and t.text for t in got[:first_final]), "interims come before the final"
    assert all(t.text.startswith("what") for t in got[:first_final] if not t.is_final)
    # Times are the session's audio times: the first frame was stamped T0.
    assert finals[0].words[0].start == pytest.approx(T0 + 0.3, abs=0.03)
    assert finals[0].end is not None and T0 + 1.3 <= finals[0].end <= T0 + 1.9 + 0.05
    assert finals[1].end == pytest.approx(T0 + len(speech) / 32_000, abs=0.03)

    session = server.listen_sessions[0]
    assert session.authorization == f"Token {KEY}"
    assert {k: session.query[k] for k in ("model", "encoding", "sample_rate", "channels", "endpointing",
                                          "utterance_end_ms", "interim_results", "vad_events")} == {
        "model": "nova-3", "encoding": "linear16", "sample_rate": "16000", "channels": "1", "endpointing": "300",
        "utterance_end_ms": "1000", "interim_results": "true", "vad_events": "true"}
    assert bytes(session.audio) == speech
    assert session.controls == ["Finalize", "CloseStream"] and session.closed_by == "server"
    assert session.audio_after_close_stream == 0


async def test_each_finalize_is_answered_exactly_once(server: FakeDeepgram) -> None:
    """Deepgram answers Finalize on an empty buffer with nothing; the stream answers it itself,
    with an empty finalized final, once ``finalize_timeout`` has passed."""
    stt, stream = await open_stream(server, finalize_timeout=0.4, endpointing_ms=0)
    reader = Reader(stream)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.run)
        await send(stream, silence(0.2) + speech_like(0.8) + silence(0.2))
        await stream.finalize()
        await reader.wait_for(lambda r: len(r.finalized) == 1)
        asked = time.monotonic()
        await stream.finalize()  # nothing was sent since: an empty buffer
        await reader.wait_for(lambda r: len(r.finalized) == 2)
        answered = reader.got[-1][0]
        await send(stream, speech_like(0.6, seed=4) + silence(0.2), t0=T0 + 1.2)
        await stream.finalize()
        await reader.wait_for(lambda r: len(r.finalized) == 3)
        await anyio.sleep(0.6)  # longer than the timeout: no stray answer may follow
        tg.cancel_scope.cancel()
    await stream.aclose()
    await stt.aclose()

    assert [t.text for t in reader.finalized] == ["what time is it", "", "and what is the date"]
    assert answered - asked >= 0.4  # the provider's own answer, after its timeout
    assert reader.finalized[1].end == pytest.approx(T0 + 1.2, abs=0.01)
    answers = [r for r in server.listen_sessions[0].results if r["from_finalize"]]
    assert len(answers) == 2  # the fake (like Deepgram) did not answer the empty Finalize
    assert server.listen_sessions[0].controls.count("Finalize") == 3


async def test_keepalive_keeps_an_idle_stream_open() -> None:
    async with FakeDeepgram(utterances=["still here"], api_key=KEY, idle_timeout=0.6) as fake:
        stt, stream = await open_stream(fake, keepalive_seconds=0.2)
        reader = Reader(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            await send(stream, silence(0.2))
            await anyio.sleep(2.0)  # a muted caller: more than three times the server's idle limit
            await send(stream, speech_like(0.6) + silence(0.1), t0=T0 + 2.2)
            await stream.finalize()
            await reader.wait_for(lambda r: r.finalized)
            tg.cancel_scope.cancel()
        await stream.aclose()

        assert [t.text for t in reader.finalized] == ["still here"]
        assert len(fake.listen_sessions) == 1 and fake.listen_sessions[0].closed_by == "server"
        assert fake.listen_sessions[0].controls.count("KeepAlive") >= 5 and stream.keepalives >= 5

        # The control: without KeepAlive in time, the server does drop the idle stream.
        stream = await stt.open_stream()
        assert isinstance(stream, DeepgramStream)
        stream._config = stream._config.model_copy(update={"keepalive_seconds": 5.0})
        reader = Reader(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            await send(stream, silence(0.2))
            with anyio.fail_after(10):
                while fake.listen_sessions[1].closed_by is None:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        await stream.aclose()
        await stt.aclose()
        assert fake.listen_sessions[1].closed_by == "idle"


async def test_a_dropped_stream_is_reopened_and_no_words_are_lost(server: FakeDeepgram) -> None:
    server.fail_next(Fault("disconnect", after=3))  # mid-phrase: after two interims
    stt, stream = await open_stream(server, endpointing_ms=0)
    reader = Reader(stream)
    speech = silence(0.3) + speech_like(1.0) + silence(0.2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.run)
        await send(stream, speech, pace=0.002)  # paced, so the drop lands mid-phrase
        await stream.finalize()
        await reader.wait_for(lambda r: r.finalized)
        tg.cancel_scope.cancel()
    await stream.aclose()
    await stt.aclose()

    assert reader.error is None
    assert [t.text for t in reader.finalized] == ["what time is it"]
    assert reader.finalized[0].end == pytest.approx(T0 + len(speech) / 32_000, abs=0.01)
    first, second = server.listen_sessions
    assert first.closed_by == "fault" and 0 < len(first.audio) <= len(speech)
    assert bytes(second.audio) == speech  # nothing was final yet: all of it was sent again, in order
    assert len(stream.reconnect_gaps) == 1


async def test_a_stream_that_keeps_dropping_fails_for_the_chain_to_take_over() -> None:
    async with FakeDeepgram(api_key=KEY, fault=Fault("disconnect", after=1)) as fake:
        stt, stream = await open_stream(fake, max_reconnects=2)
        reader = Reader(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            with pytest.raises(ProviderError) as from_send:  # whichever notices first: both raise
                await send(stream, silence(0.3) + speech_like(1.0) + silence(2.0), pace=0.002)
            await reader.wait_for(lambda r: r.error is not None)
        for error in (reader.error, from_send.value):
            assert "dropped (dropped without a close frame) 3 times without a final" in str(error)
        with pytest.raises(ProviderError, match="dropped"):
            await stream.send(frames(silence(0.02))[0])  # the failure stays: send raises it too
        await stream.aclose()
        await stt.aclose()
        assert len(fake.listen_sessions) == 3


async def test_close_stream_goes_after_the_audio_being_sent(server: FakeDeepgram) -> None:
    stt, stream = await open_stream(server)
    speech = speech_like(2.0)
    sent_some = anyio.Event()

    async def keep_sending() -> None:
        for i, frame in enumerate(frames(speech, T0)):
            await stream.send(frame)
            if i == 10:
                sent_some.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(keep_sending)
        await sent_some.wait()
        with anyio.fail_after(5):
            await stream.aclose()  # while frames are still being sent
    await stt.aclose()
    session = server.listen_sessions[0]
    assert session.controls[-1] == "CloseStream" and session.audio_after_close_stream == 0
    assert session.closed_by == "server" and any(m["type"] == "Metadata" for m in session.sent)


async def test_a_reader_gets_the_last_final_after_close_stream(server: FakeDeepgram) -> None:
    """CloseStream flushes the audio no final covered yet: a reader still iterating gets it, and
    aclose returns once Deepgram's Metadata is in, without waiting out its bound."""
    stt, stream = await open_stream(server, endpointing_ms=0)
    reader = Reader(stream)
    with anyio.fail_after(10):  # the reader's iteration ends on its own once the stream closed
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            await send(stream, silence(0.3) + speech_like(1.0))
            started = time.monotonic()
            await stream.aclose()
            elapsed = time.monotonic() - started
    await stt.aclose()
    assert [t.text for t in reader.transcripts if t.is_final] == ["what time is it"]
    assert not reader.finalized and reader.error is None
    assert server.listen_sessions[0].closed_by == "server"
    assert elapsed < CLOSE_SECONDS, elapsed


async def test_closing_never_hangs_on_a_server_that_stopped_answering() -> None:
    async with FakeDeepgram(api_key=KEY, fault=Fault("stall")) as fake:
        stt, stream = await open_stream(fake)
        await send(stream, speech_like(0.5))
        started = time.monotonic()
        await stream.aclose()
        elapsed = time.monotonic() - started
        await stt.aclose()
    assert fake.listen_sessions[0].controls == ["CloseStream"]
    assert elapsed < 5.0, elapsed  # bounded by the stream itself (about 1.5 s), not the SDK's 10 s


# --- errors -------------------------------------------------------------------------------------


async def test_a_wrong_key_is_refused_and_never_quoted(server: FakeDeepgram) -> None:
    wrong = "dg-wrong-9876543210zyxwvutsrq"
    stt = DeepgramSTT(stt_config(server, api_key=wrong))
    await stt.prepare()
    with pytest.raises(ProviderUnavailable) as refused:
        await stt.open_stream()
    await stt.aclose()
    text = str(refused.value)
    assert text.startswith("deepgram: the API key was refused (401); check api_key for ws://127.0.0.1:")
    assert wrong not in text and refused.value.__suppress_context__


async def test_a_server_that_is_down_is_a_clear_error() -> None:
    async with FakeDeepgram() as gone:
        url = gone.websocket_url
    stt = DeepgramSTT(DeepgramSTTConfig(provider="deepgram", api_key=KEY, websocket_url=url))
    await stt.prepare()  # building the client needs no server
    with pytest.raises(ProviderError, match=r"cannot reach ws://127\.0\.0\.1:\d+/v1/listen \(connection refused"):
        await stt.open_stream()
    await stt.aclose()


@pytest.mark.parametrize(("fault", "expected"), [
    (Fault("malformed", after=1), "sent a malformed message"),
    (Fault("error", after=1), "reported an error: The server had an error processing your request"),
])
async def test_bad_messages_fail_the_stream_without_the_key(fault: Fault, expected: str) -> None:
    async with FakeDeepgram(api_key=KEY, fault=fault) as fake:
        stt, stream = await open_stream(fake)
        reader = Reader(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            with pytest.raises(ProviderError):  # send raises the stream's failure too
                await send(stream, silence(0.3) + speech_like(1.0) + silence(3.0), pace=0.002)
            await reader.wait_for(lambda r: r.error is not None)
        await stream.aclose()
        await stt.aclose()
    assert expected in str(reader.error) and KEY not in str(reader.error)


async def test_the_official_service_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    for unset in (None, ""):  # "": ${DEEPGRAM_API_KEY:-} with the variable unset
        with pytest.raises(ProviderUnavailable, match=r"no Deepgram API key: set api_key .* DEEPGRAM_API_KEY"):
            await DeepgramSTT(DeepgramSTTConfig(provider="deepgram", api_key=unset)).prepare()
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)
    stt = DeepgramSTT(DeepgramSTTConfig(provider="deepgram"))
    await stt.prepare()
    assert stt.url == "wss://api.deepgram.com/v1/listen"
    await stt.aclose()


async def test_the_deepgram_key_is_not_sent_to_other_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)
    async with FakeDeepgram(api_key="no-key-needed", utterances=["self hosted"]) as fake:
        stt, stream = await open_stream(fake, api_key=None)
        await stream.aclose()
        await stt.aclose()
    assert fake.listen_sessions[0].authorization == "Token no-key-needed"


async def test_a_hung_server_meets_the_connect_deadline_and_the_chain_moves_on() -> None:
    async with FakeDeepgram(api_key=KEY, fault=Fault("hang")) as fake:
        stt = DeepgramSTT(stt_config(fake, timeouts={**FAST, "connect": 0.3}))
        scripted = ScriptedSTT(ScriptedSTTConfig(lines=["fallback"]))
        await stt.prepare()
        recognizer = Recognizer([stt, scripted])
        started = time.monotonic()
        with anyio.fail_after(10):
            await recognizer.open()
        elapsed = time.monotonic() - started
        await recognizer.aclose()
        await stt.aclose()
    assert recognizer.provider_name == "scripted-stt"
    assert len(fake.listen_sessions) == 1 and not fake.listen_sessions[0].accepted
    assert elapsed < 0.3 + 5.0  # the connect deadline, not the SDK's 10 s open timeout


async def test_a_server_that_accepts_and_then_stalls_fails_the_stream() -> None:
    """Not an empty final, as if the caller had said nothing: the runtime must move on."""
    async with FakeDeepgram(api_key=KEY, fault=Fault("stall")) as fake:
        stt, stream = await open_stream(fake, finalize_timeout=0.3)
        reader = Reader(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            await send(stream, silence(0.3) + speech_like(1.0) + silence(0.3))
            await stream.finalize()
            await reader.wait_for(lambda r: r.error is not None)
        with pytest.raises(ProviderError, match="answered nothing"):
            await stream.finalize()
        await stream.aclose()
        await stt.aclose()
    assert not reader.finalized
    assert "accepted the stream but answered nothing (1.6 s of audio sent" in str(reader.error)


# --- conformance --------------------------------------------------------------------------------


async def test_conformance_with_real_speech() -> None:
    speech = espeak_pcm("please call me back tomorrow")
    async with FakeDeepgram(utterances=["please call me back tomorrow"], api_key=KEY) as fake:
        stt = DeepgramSTT(stt_config(fake))
        await stt.prepare()
        transcript = await check_stt(stt, speech)
        await stt.aclose()
    assert transcript.is_final and transcript.text == "please call me back tomorrow"
    assert bytes(fake.listen_sessions[0].audio).startswith(speech)  # the last frame zero-padded
