"""Piper neural TTS (onnxruntime), the joe voice from PyPI by default.

Importing this plugin is cheap: ``piper`` and ``onnxruntime`` are imported inside
:meth:`PiperTTS.prepare`, so ``voiceflow plugins`` works without the offline extras installed.
"""

from __future__ import annotations

from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow_piper.config import VOICES, PiperConfig
from voiceflow_piper.provider import PiperTTS

__all__ = ["VOICES", "PiperConfig", "PiperTTS", "register_providers"]


@hookimpl
def register_providers(register: Register) -> None:
    register(PiperTTS)
