"""The espeak-ng TTS provider (in-process through ctypes), alone and next to Piper."""

from __future__ import annotations

import gc
import threading
import time
from contextlib import aclosing

import anyio
import numpy as np
import pytest

from voiceflow.frames import TTSAudio
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderKind, ProviderUnavailable, TTSProvider
from voiceflow_espeak import EspeakConfig, EspeakTTS

pytestmark = pytest.mark.anyio

SENTENCE = "Hello, how can I help you today?"
LONG = " ".join(["This is a long sentence that keeps espeak busy for a while."] * 40)


@pytest.fixture(scope="module")
async def espeak() -> EspeakTTS:
    tts = EspeakTTS(EspeakConfig(provider="espeak"))
    await tts.prepare()
    return tts


async def _pcm(tts: TTSProvider, text: str) -> tuple[np.ndarray, set[int]]:
    chunks: list[TTSAudio] = [chunk async for chunk in tts.synthesize(text)]
    samples = np.frombuffer(b"".join(chunk.pcm for chunk in chunks), dtype="<i2")
    return samples, {chunk.sample_rate for chunk in chunks}


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_registered_as_plugin() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert registry.get(ProviderKind.TTS, "espeak").cls is EspeakTTS


async def test_speaks_a_sentence(espeak: EspeakTTS) -> None:
    samples, rates = await _pcm(espeak, SENTENCE)
    assert rates == {22_050}
    assert 1.0 < samples.size / 22_050 < 4.0
    assert _rms(samples) > 500


async def test_first_audio_comes_before_the_rest_is_synthesised(espeak: EspeakTTS) -> None:
    """Streaming, not batch: the first chunk is a small part of the clause (timings: benchmarks/)."""
    async with aclosing(espeak.synthesize(LONG)) as chunks:
        first = await anext(chunks)
        rest = [chunk async for chunk in chunks]
    total = len(first.pcm) + sum(len(chunk.pcm) for chunk in rest)
    assert rest and len(first.pcm) < total / 3


async def test_first_chunk_arrives_before_long_text_is_done(espeak: EspeakTTS) -> None:
    start = time.perf_counter()
    stamps = [time.perf_counter() - start async for _ in espeak.synthesize(LONG)]
    assert len(stamps) >= 2
    assert stamps[0] < stamps[-1] / 2


async def test_abort_stops_synthesis(espeak: EspeakTTS) -> None:
    start = time.perf_counter()
    async with aclosing(espeak.synthesize(LONG)) as chunks:
        first = await anext(chunks)
    assert len(first.pcm) / 2 / 22_050 < 60  # nowhere near the whole minute of text
    while any(thread.name in ("espeak", "espeak-synth") for thread in threading.enumerate()):
        assert time.perf_counter() - start < 0.5, "espeak-ng still synthesising"
        await anyio.sleep(0.002)
    with anyio.move_on_after(0.001):
        await _pcm(espeak, LONG)
    samples, _ = await _pcm(espeak, SENTENCE)
    assert 1.0 < samples.size / 22_050 < 4.0


async def test_cancel_while_waiting_for_the_engine_leaks_nothing(espeak: EspeakTTS) -> None:
    async with aclosing(espeak.synthesize(LONG)) as busy:
        await anext(busy)  # this stream now holds the engine
        with anyio.move_on_after(0.02) as scope:
            await _pcm(espeak, SENTENCE)  # waits for the engine, then is cancelled
        assert scope.cancelled_caught
    gc.collect()  # an unclosed stream would surface here as an unraisable ResourceWarning


async def test_rate_changes_duration() -> None:
    fast = EspeakTTS(EspeakConfig(provider="espeak", rate=300))
    slow = EspeakTTS(EspeakConfig(provider="espeak", rate=120, pitch=20))
    await fast.prepare()
    await slow.prepare()
    fast_samples, _ = await _pcm(fast, SENTENCE)
    slow_samples, _ = await _pcm(slow, SENTENCE)
    assert slow_samples.size > fast_samples.size * 1.8


async def test_concurrent_instances_share_the_engine_safely() -> None:
    voices = [EspeakTTS(EspeakConfig(provider="espeak", rate=rate)) for rate in (150, 250)]
    for voice in voices:
        await voice.prepare()
    results: dict[int, int] = {}

    async def speak(index: int) -> None:
        samples, _ = await _pcm(voices[index], SENTENCE)
        results[index] = samples.size

    async with anyio.create_task_group() as tg:
        for index in (0, 1, 0, 1):
            tg.start_soon(speak, index)
    assert results[0] > results[1] * 1.3  # each kept its own rate despite the shared globals


async def test_unknown_voice_is_unavailable() -> None:
    tts = EspeakTTS(EspeakConfig(provider="espeak", voice="no-such-voice"))
    with pytest.raises(ProviderUnavailable, match="no-such-voice"):
        await tts.prepare()


@pytest.mark.slow
async def test_coexists_with_piper(espeak: EspeakTTS) -> None:
    from voiceflow_piper import PiperConfig, PiperTTS

    piper = PiperTTS(PiperConfig(provider="piper"))
    await piper.prepare()  # piper initialises its own (static) espeak-ng copy for phonemes
    before, _ = await _pcm(espeak, SENTENCE)
    results: dict[str, np.ndarray] = {}

    async def run(name: str, tts: TTSProvider) -> None:
        for _ in range(3):
            results[name], _ = await _pcm(tts, SENTENCE)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "piper", piper)
        tg.start_soon(run, "espeak", espeak)
    # espeak-ng's settings are untouched by piper's copy (its output varies by a few samples).
    assert abs(results["espeak"].size - before.size) < before.size * 0.02
    assert _rms(results["espeak"]) > 500
    assert 1.0 < results["piper"].size / 22_050 < 4.0
    assert _rms(results["piper"]) > 1000
    await piper.aclose()
