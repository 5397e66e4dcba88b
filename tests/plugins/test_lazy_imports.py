"""Every built-in plugin imports without its heavy runtime, and says what to install.

`voiceflow plugins`, `voiceflow validate` and schema generation import every installed plugin;
they must work (and stay fast) on a machine without the offline extras. Each case runs in a fresh
interpreter where the runtime modules are made unimportable.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    ("voiceflow_deepgram", "DeepgramSTT", "DeepgramSTTConfig", "deepgram", ["deepgram", "websockets", "httpx"]),
    ("voiceflow_deepgram", "DeepgramAura", "AuraConfig", "deepgram-aura", ["deepgram", "websockets", "httpx"]),
    ("voiceflow_elevenlabs", "ElevenLabsTTS", "ElevenLabsConfig", "elevenlabs", ["elevenlabs", "websockets", "httpx"]),
    ("voiceflow_espeak", "EspeakTTS", "EspeakConfig", "espeak", ["espeakng_loader"]),
    ("voiceflow_llama_cpp", "LlamaCppLLM", "LlamaCppConfig", "llama-cpp", ["llama_cpp"]),
    ("voiceflow_openai", "OpenAILLM", "OpenAIConfig", "openai", ["openai", "httpx2"]),
    ("voiceflow_piper", "PiperTTS", "PiperConfig", "piper", ["piper", "onnxruntime"]),
    ("voiceflow_silero", "SileroVAD", "SileroConfig", "silero", ["onnxruntime"]),
    ("voiceflow_whisper", "WhisperSTT", "WhisperConfig", "whisper", ["ctranslate2", "faster_whisper"]),
]


@pytest.mark.parametrize(("module", "provider", "config", "name", "blocked"), CASES)
def test_plugin_imports_without_its_runtime(module: str, provider: str, config: str, name: str, blocked: list[str]) -> None:
    code = f"""
import sys
for blocked in {blocked!r}:
    sys.modules[blocked] = None
import anyio
from {module} import {provider}, {config}
from voiceflow.providers import ProviderUnavailable
instance = {provider}({config}(provider={name!r}))
try:
    anyio.run(instance.prepare)
except ProviderUnavailable as exc:
    assert "pip install" in str(exc), exc
else:
    raise SystemExit("prepare() worked without its runtime")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
