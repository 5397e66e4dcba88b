"""Every built-in provider (and the example third-party one) passes the plugin conformance suite."""

from __future__ import annotations

import pytest
from voiceflow_example_plugin import EchoConfig, EchoLLM

from audio_fixtures import espeak_pcm, goforward
from voiceflow.testing.conformance import ConformanceError, check_llm, check_stt, check_tts, check_vad
from voiceflow.testing.fakes import ScriptedLLM, ScriptedLLMConfig, ToneTTS, ToneTTSConfig
from voiceflow_espeak import EspeakConfig, EspeakTTS
from voiceflow_silero import SileroConfig, SileroVAD

pytestmark = pytest.mark.anyio


async def test_espeak_conforms() -> None:
    tts = EspeakTTS(EspeakConfig(provider="espeak"))
    await tts.prepare()
    report = await check_tts(tts)
    assert report.items >= 2 and report.cancel_latency < 0.5


async def test_example_plugin_llm_and_fakes_conform() -> None:
    echo = EchoLLM(EchoConfig(provider="echo", delay_ms=20))
    assert (await check_llm(echo)).items >= 3
    assert (await check_llm(ScriptedLLM(ScriptedLLMConfig(replies=["one two three four"])))).items == 4
    await check_tts(ToneTTS(ToneTTSConfig()))


async def test_a_batch_provider_fails_the_suite() -> None:
    """The suite can fail: a TTS that returns one blob is not streaming."""
    with pytest.raises(ConformanceError, match="must stream"):
        await check_tts(ToneTTS(ToneTTSConfig(chunk_seconds=60.0)))


async def test_silero_conforms() -> None:
    vad = SileroVAD(SileroConfig(provider="silero"))
    await vad.prepare()
    start, end = check_vad(vad, goforward())
    assert end - start > 1.0


@pytest.mark.slow
async def test_llama_cpp_conforms() -> None:
    from voiceflow_llama_cpp import LlamaCppConfig, LlamaCppLLM

    llm = LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", model="smollm2-135m", max_tokens=40))
    await llm.prepare()
    report = await check_llm(llm)
    assert report.cancel_latency < 0.3


@pytest.mark.slow
async def test_piper_conforms() -> None:
    from voiceflow_piper import PiperConfig, PiperTTS

    tts = PiperTTS(PiperConfig(provider="piper"))
    await tts.prepare()
    report = await check_tts(tts)
    assert report.ttfb < report.total


@pytest.mark.slow
async def test_whisper_conforms() -> None:
    from voiceflow_whisper import WhisperConfig, WhisperSTT

    stt = WhisperSTT(WhisperConfig())
    await stt.prepare()
    transcript = await check_stt(stt, espeak_pcm("please call me back tomorrow"))
    assert "tomorrow" in transcript.text.lower()
