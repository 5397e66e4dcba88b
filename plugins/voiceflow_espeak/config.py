"""Configuration of the espeak-ng TTS."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voiceflow.config.base import ProviderConfig


class EspeakConfig(ProviderConfig):
    """espeak-ng formant synthesis: instant and robotic, a fallback that never fails to load."""

    provider: Literal["espeak"] = Field(description="Selects the in-process espeak-ng TTS.")
    voice: str = Field(
        "en-us",
        min_length=1,
        description="espeak-ng voice name, e.g. 'en-us', 'en-gb', 'de', 'en-us+f3' (voice+variant).",
    )
    rate: int = Field(175, ge=80, le=450, description="Speaking rate in words per minute.")
    pitch: int = Field(50, ge=0, le=100, description="Base pitch, 0-100 (espeak-ng's default is 50).")
