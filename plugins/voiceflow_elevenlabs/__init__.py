"""TTS through ElevenLabs: the stream-input websocket (with per-character alignment and a socket
opened ahead for the next clause) or the HTTP streaming endpoint through the official SDK.

Importing this plugin is cheap: ``websockets`` and the ``elevenlabs`` SDK are imported inside
:meth:`ElevenLabsTTS.prepare` and the synthesis code, so ``voiceflow plugins`` and schema
generation work without the ``cloud`` extra installed.
"""

from __future__ import annotations

from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow_elevenlabs.config import ElevenLabsConfig, ElevenLabsVoiceSettings
from voiceflow_elevenlabs.provider import ElevenLabsTTS

__all__ = ["ElevenLabsConfig", "ElevenLabsTTS", "ElevenLabsVoiceSettings", "register_providers"]


@hookimpl
def register_providers(register: Register) -> None:
    register(ElevenLabsTTS)
