"""The Piper TTS provider with the real joe voice."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import numpy as np
import pytest

from voiceflow.frames import TTSAudio
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderKind, ProviderUnavailable
from voiceflow_piper import PiperConfig, PiperTTS

pytestmark = pytest.mark.anyio

SENTENCE = "Hello, how can I help you today?"
LONG = (
    "Well, if you are looking for something quick, warm and filling for dinner tonight, "
    "a vegetable stew with crusty bread is hard to beat, and it only takes half an hour. "
    "Would you like the recipe?"
)


@pytest.fixture(scope="module")
async def piper() -> AsyncIterator[PiperTTS]:
    tts = PiperTTS(PiperConfig(provider="piper"))
    await tts.prepare()
    yield tts
    await tts.aclose()


async def _collect(tts: PiperTTS, text: str) -> list[TTSAudio]:
    return [chunk async for chunk in tts.synthesize(text)]


def test_registered_as_plugin() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert registry.get(ProviderKind.TTS, "piper").cls is PiperTTS


async def test_missing_voice_file_is_unavailable(tmp_path: Path) -> None:
    tts = PiperTTS(PiperConfig(provider="piper", model_path=tmp_path / "voice.onnx"))
    with pytest.raises(ProviderUnavailable, match="does not exist"):
        await tts.prepare()


async def test_wrong_sha256_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"not a model")
    (tmp_path / "voice.onnx.json").write_text("{}")
    tts = PiperTTS(PiperConfig(provider="piper", model_path=model, sha256="0" * 64))
    with pytest.raises(ProviderUnavailable, match="sha256"):
        await tts.prepare()


@pytest.mark.slow
async def test_sentence_is_speech_of_plausible_length(piper: PiperTTS) -> None:
    chunks = await _collect(piper, SENTENCE)
    assert {chunk.sample_rate for chunk in chunks} == {22_050}
    assert all(len(chunk.pcm) % 2 == 0 for chunk in chunks)
    samples = np.frombuffer(b"".join(chunk.pcm for chunk in chunks), dtype="<i2")
    seconds = samples.size / 22_050
    assert 1.0 < seconds < 4.0, seconds  # seven words at a conversational pace
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert rms > 1000, rms  # speech, not silence or noise floor
    assert np.abs(samples).max() > 20_000  # peak-normalised


@pytest.mark.slow
async def test_long_text_streams_in_chunks(piper: PiperTTS) -> None:
    start = time.perf_counter()
    stamps: list[float] = []
    total = 0
    async for chunk in piper.synthesize(LONG):
        stamps.append(time.perf_counter() - start)
        total += len(chunk.pcm)
    assert len(stamps) >= 5
    assert total / 2 / 22_050 > 6.0
    assert stamps[0] < stamps[-1] / 2, f"first audio at {stamps[0]:.3f}s, last at {stamps[-1]:.3f}s"


@pytest.mark.slow
async def test_cancel_stops_synthesis_and_frees_voice(piper: PiperTTS) -> None:
    async with aclosing(piper.synthesize(LONG)) as chunks:
        await anext(chunks)
    start = time.perf_counter()
    while any(thread.name == "piper" for thread in threading.enumerate()):
        assert time.perf_counter() - start < 1.0, "synthesis thread still running"
        await anyio.sleep(0.005)

    with anyio.move_on_after(0.05):  # barge-in: cancel the task that iterates
        await _collect(piper, LONG)
    chunks = await _collect(piper, SENTENCE)
    assert sum(len(chunk.pcm) for chunk in chunks) > 22_050 * 2


@pytest.mark.slow
async def test_length_scale_and_sentence_silence(piper: PiperTTS) -> None:
    text = "One moment. Let me check."
    # noise_w_scale 0: phoneme durations without random variation, so lengths compare exactly.
    steady = PiperTTS(PiperConfig(provider="piper", noise_w_scale=0.0))
    slow = PiperTTS(PiperConfig(provider="piper", length_scale=1.5, noise_w_scale=0.0))
    paused = PiperTTS(PiperConfig(provider="piper", sentence_silence=0.5))
    for voice in (steady, slow, paused):
        await voice.prepare()
    try:
        normal = sum(len(chunk.pcm) for chunk in await _collect(steady, text)) / 2 / 22_050
        slower = sum(len(chunk.pcm) for chunk in await _collect(slow, text)) / 2 / 22_050
        chunks = await _collect(paused, text)
    finally:
        for voice in (steady, slow, paused):
            await voice.aclose()
    assert slower > normal * 1.3
    silences = [chunk for chunk in chunks if not any(chunk.pcm)]
    # one pause, between the sentences, never after the last one
    assert [len(chunk.pcm) for chunk in silences] == [int(0.5 * 22_050) * 2]
    assert chunks[-1] is not silences[0]
