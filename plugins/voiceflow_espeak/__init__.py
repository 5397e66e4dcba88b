"""espeak-ng in-process through ctypes: the instant, robotic fallback TTS.

Importing this plugin is cheap: the shared library (from the espeakng-loader package) is opened
inside :meth:`EspeakTTS.prepare`.
"""

from __future__ import annotations

from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow_espeak.config import EspeakConfig
from voiceflow_espeak.provider import EspeakTTS

__all__ = ["EspeakConfig", "EspeakTTS", "register_providers"]


@hookimpl
def register_providers(register: Register) -> None:
    register(EspeakTTS)
