"""Each built-in provider alone: time to first output, total time, time to stop when cancelled.

    python benchmarks/providers.py [--repeat 3]

Uses the plugin conformance suite (voiceflow.testing.conformance), so these are the same
measurements a third-party plugin author gets for their own provider. Medians of --repeat runs,
models warm (loaded and used once before measuring).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from voiceflow.audio import read_wav
from voiceflow.testing.conformance import check_llm, check_stt, check_tts


def espeak_speech(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
        return read_wav(wav)


async def main(repeat: int) -> None:
    from voiceflow_espeak import EspeakConfig, EspeakTTS
    from voiceflow_llama_cpp import LlamaCppConfig, LlamaCppLLM
    from voiceflow_piper import PiperConfig, PiperTTS
    from voiceflow_whisper import WhisperConfig, WhisperSTT

    speech = espeak_speech("Could you book me a table for two at seven tonight?")
    cases: list[tuple[str, Any, Callable[[Any], Awaitable[Any]]]] = [
        ("tts espeak", EspeakTTS(EspeakConfig(provider="espeak")), check_tts),
        ("tts piper (joe)", PiperTTS(PiperConfig(provider="piper")), check_tts),
        ("llm llama-cpp qwen2.5-0.5b", LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", max_tokens=60)), check_llm),
        ("llm llama-cpp smollm2-135m",
         LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", model="smollm2-135m", max_tokens=60)), check_llm),
    ]
    print(f"{'provider':<30} {'first output':>13} {'total':>9} {'items':>6} {'stop after cancel':>18}")
    for name, provider, check in cases:
        await provider.prepare()
        await check(provider)  # warm
        reports = [await check(provider) for _ in range(repeat)]
        print(f"{name:<30} {1000 * statistics.median(r.ttfb for r in reports):>10.0f} ms"
              f" {1000 * statistics.median(r.total for r in reports):>6.0f} ms"
              f" {statistics.median(r.items for r in reports):>6.0f}"
              f" {1000 * statistics.median(r.cancel_latency for r in reports):>15.1f} ms")
        await provider.aclose()
    stt = WhisperSTT(WhisperConfig())
    await stt.prepare()
    await check_stt(stt, speech)
    times = []
    for _ in range(repeat):
        began = anyio.current_time()
        transcript = await check_stt(stt, speech)
        times.append(anyio.current_time() - began)
    print(f"{'stt whisper base (finalize)':<30} {1000 * statistics.median(times):>10.0f} ms  "
          f"final: {transcript.text!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    anyio.run(main, parser.parse_args().repeat)
