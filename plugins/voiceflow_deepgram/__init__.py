"""Deepgram through the official deepgram-sdk: streaming speech recognition (``deepgram``) and
Aura text-to-speech (``deepgram-aura``), async throughout.

Importing this plugin is cheap: the SDK is imported inside ``prepare()``, in a worker thread, so
``voiceflow plugins`` and schema generation work without the ``cloud`` extra installed.
"""

from __future__ import annotations

from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow_deepgram.config import AuraConfig, DeepgramSTTConfig
from voiceflow_deepgram.stt import DeepgramSTT
from voiceflow_deepgram.tts import DeepgramAura

__all__ = ["AuraConfig", "DeepgramAura", "DeepgramSTT", "DeepgramSTTConfig", "register_providers"]


@hookimpl
def register_providers(register: Register) -> None:
    register(DeepgramSTT)
    register(DeepgramAura)
