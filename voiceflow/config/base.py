"""The base models plugins build their provider configs on.

This module knows nothing of any plugin. Each provider declares a subclass of
:class:`ProviderConfig` with ``provider: Literal["its-name"]``; the plugin registry composes those
into discriminated unions for the full agent model (:mod:`voiceflow.config.compose`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Every config model forbids unknown keys: a typo must be an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AttemptTimeouts(Strict):
    """Per-attempt limits a fallback chain enforces around each provider call."""

    connect: float = Field(5.0, gt=0, description="Seconds to open the stream or connection.")
    first_byte: float = Field(
        4.0, gt=0, description="Seconds from request to the first token or audio chunk."
    )
    idle: float = Field(5.0, gt=0, description="Longest gap between two items of one stream.")


class ProviderConfig(Strict):
    """Settings common to every provider entry of a stage's chain."""

    provider: str = Field(description="Which registered provider this entry uses.")
    timeouts: AttemptTimeouts = AttemptTimeouts()
