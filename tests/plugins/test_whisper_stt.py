"""Whisper STT on real speech: accuracy, silence, latency, a free event loop, cancellation, and
refusal of tampered weights. Tests that load the model are ``slow``; the model is joined into a
temp VOICEFLOW_CACHE once per module."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from audio_fixtures import GOFORWARD_TEXT, espeak_pcm, frames, goforward, noise, pad, word_error_rate
from voiceflow.frames import Transcript
from voiceflow.models import ModelError, ModelFile, ensure_model_file
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderError, ProviderKind, ProviderUnavailable, STTStream
from voiceflow_whisper import WhisperConfig, WhisperStream, WhisperSTT
from voiceflow_whisper.weights import MODEL_BIN

pytestmark = pytest.mark.anyio
SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def whisper_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("voiceflow-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VOICEFLOW_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
async def stt(whisper_cache: Path) -> AsyncIterator[WhisperSTT]:
    provider = WhisperSTT(WhisperConfig())
    await provider.prepare()
    yield provider
    await provider.aclose()


async def say(stream: STTStream, pcm: bytes, t0: float = 0.0, speech_at: float | None = None) -> float:
    """Send ``pcm`` as 20 ms frames from audio time ``t0``; return the time after the last frame."""
    audio = frames(pcm, t0)
    for frame in audio:
        await stream.send(frame)
    if speech_at is not None:
        stream.speech_started(t0 + speech_at)
    return audio[-1].t + audio[-1].duration


async def final(stream: STTStream) -> Transcript:
    """Finalize and return the final transcript it produced."""
    await stream.finalize()
    async with aclosing(stream.transcripts()) as transcripts:  # type: ignore[type-var]
        with anyio.fail_after(5):
            transcript = await anext(transcripts)
    assert transcript.is_final
    return transcript


def flip_byte(path: Path, offset: int) -> None:
    """Corrupt one byte in place: same size, different content."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


# --- with the real model --------------------------------------------------------------------


@pytest.mark.slow
async def test_transcribes_a_real_recording(stt: WhisperSTT) -> None:
    stream = await stt.open_stream()
    await say(stream, pad(goforward(), 0.5, 0.5), speech_at=1.0)
    transcript = await final(stream)
    assert word_error_rate(GOFORWARD_TEXT, transcript.text) == 0, transcript.text
    assert transcript.text == transcript.text.strip()
    assert transcript.confidence is not None and 0 < transcript.confidence <= 1
    await stream.aclose()


@pytest.mark.slow
async def test_transcribes_synthetic_speech(stt: WhisperSTT) -> None:
    stream = await stt.open_stream()
    await say(stream, pad(espeak_pcm(SENTENCE), 0.3, 0.3), speech_at=0.3)
    transcript = await final(stream)
    assert word_error_rate(SENTENCE, transcript.text) <= 0.12, transcript.text
    await stream.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("dbfs", [None, -60.0])
async def test_silence_gives_an_empty_final(stt: WhisperSTT, dbfs: float | None) -> None:
    stream = await stt.open_stream()
    await say(stream, pad(b"", after=2.0) if dbfs is None else noise(2.0, dbfs))
    assert (await final(stream)).text == ""
    await stream.aclose()


@pytest.mark.slow
async def test_finalize_without_audio_is_prompt(stt: WhisperSTT) -> None:
    stream = await stt.open_stream()
    began = time.perf_counter()
    assert (await final(stream)).text == ""
    assert time.perf_counter() - began < 0.1  # nothing decoded: a real decode takes ≥ 0.2 s
    await stream.aclose()


@pytest.mark.slow
async def test_consecutive_turns_are_decoded_separately(stt: WhisperSTT) -> None:
    """Each finalize covers only its own turn, even when the next pre-roll reaches back."""
    stream = await stt.open_stream()
    end = await say(stream, pad(goforward(), 0.2, 0.0), speech_at=0.5)
    first = await final(stream)
    # The second turn starts right away: its 0.3 s pre-roll overlaps the first turn's audio.
    await say(stream, pad(espeak_pcm(SENTENCE), 0.0, 0.3), t0=end, speech_at=0.0)
    second = await final(stream)
    assert word_error_rate(GOFORWARD_TEXT, first.text) == 0, first.text
    assert word_error_rate(SENTENCE, second.text) <= 0.12, second.text
    await stream.aclose()


@pytest.mark.slow
async def test_event_loop_keeps_running_while_decoding(stt: WhisperSTT) -> None:
    stream = await stt.open_stream()
    await say(stream, pad(goforward(), 0.3, 0.3))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.02)
        began = time.perf_counter()
        transcript = await final(stream)
        took = time.perf_counter() - began
        tg.cancel_scope.cancel()
    during = [t for t in ticks if t >= began]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert transcript.text
    assert len(during) >= took / 0.005 / 4, (len(during), took)
    assert max(gaps) < took / 2, (max(gaps), took)  # a blocked loop would show one gap ≈ took
    await stream.aclose()


@pytest.mark.slow
async def test_cancelled_finalize_leaves_the_stream_usable(stt: WhisperSTT) -> None:
    stream = await stt.open_stream()
    end = await say(stream, pad(espeak_pcm("Cancel this one please."), 0.2, 0.2))
    with anyio.move_on_after(0.02) as scope:
        await stream.finalize()
    assert scope.cancelled_caught
    await say(stream, pad(goforward(), 0.2, 0.3), t0=end + 1.0, speech_at=0.5)
    transcript = await final(stream)
    assert word_error_rate(GOFORWARD_TEXT, transcript.text) == 0, transcript.text
    await stream.aclose()


@pytest.mark.slow
async def test_latency_of_a_two_second_turn(stt: WhisperSTT) -> None:
    stream = await stt.open_stream()
    latencies = []
    t = 0.0
    for _ in range(3):
        t = await say(stream, pad(goforward()[: 2 * 16000 * 2 + 8000], 0.0, 0.2), t0=t, speech_at=0.3)
        began = time.perf_counter()
        transcript = await final(stream)
        latencies.append(time.perf_counter() - began)
        assert transcript.text.lower().startswith("go forward"), transcript.text
    print(f"whisper final latency on a ~2 s turn: median {statistics.median(latencies) * 1000:.0f} ms")
    assert statistics.median(latencies) < 1.5  # ~0.25 s on an idle 2-core box; shared CI is slower
    await stream.aclose()


@pytest.mark.slow
async def test_tampered_cache_files_are_replaced(stt: WhisperSTT, whisper_cache: Path) -> None:
    model_dir = whisper_cache / "whisper-base"
    for name in ("model.bin", "tokenizer.json"):
        path = model_dir / name
        flip_byte(path, 1000)
        stat = path.stat()
        path.touch()
        assert path.stat().st_mtime_ns != stat.st_mtime_ns or pytest.skip("coarse mtime")
    fresh = WhisperSTT(WhisperConfig())
    await fresh.prepare()  # verifies, finds both mismatches, rebuilds from the packages
    stream = await fresh.open_stream()
    await say(stream, pad(goforward(), 0.3, 0.3))
    assert word_error_rate(GOFORWARD_TEXT, (await final(stream)).text) == 0
    await stream.aclose()


@pytest.mark.slow
def test_real_parts_with_a_wrong_hash_are_refused(whisper_cache: Path) -> None:
    wrong = ModelFile("elsewhere/model.bin", "0" * 64, MODEL_BIN.size, MODEL_BIN.parts)
    with pytest.raises(ModelError, match="refusing"):
        ensure_model_file(wrong)
    assert not (whisper_cache / "elsewhere" / "model.bin").exists()


# --- without the model ----------------------------------------------------------------------


async def test_bad_user_model_paths_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailable, match="not a directory"):
        await WhisperSTT(WhisperConfig(model_path=tmp_path / "absent")).prepare()
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ProviderUnavailable, match="whisper"):
        await WhisperSTT(WhisperConfig(model_path=tmp_path)).prepare()


async def test_open_stream_before_prepare_is_an_error() -> None:
    with pytest.raises(ProviderError, match="prepare"):
        await WhisperSTT(WhisperConfig()).open_stream()


def echo_length(pcm: bytes) -> tuple[str, float | None]:
    """A stand-in decoder (for the plugin's own buffering logic): reports how much audio it got."""
    return f"{len(pcm) // 2 / 16000:.2f}", None


async def test_buffer_keeps_pre_roll_and_is_bounded() -> None:
    stream = WhisperStream(echo_length, anyio.CapacityLimiter(1), pre_roll=0.3, max_utterance=2.0)
    end = await say(stream, noise(5.0, -30.0))
    stream.speech_started(4.0)
    assert (await final(stream)).text == "1.30"  # 0.3 s pre-roll + 1.0 s since speech began
    await say(stream, noise(10.0, -30.0), t0=end)
    assert (await final(stream)).text == "2.30"  # never more than pre_roll + max_utterance
    await stream.aclose()
    assert [t async for t in stream.transcripts()] == []


def test_registered_and_documented() -> None:
    info = PluginRegistry(builtin_only=True).get(ProviderKind.STT, "whisper")
    assert info.cls is WhisperSTT
    for name, field in WhisperConfig.model_fields.items():
        if name != "timeouts":
            assert field.description, name
