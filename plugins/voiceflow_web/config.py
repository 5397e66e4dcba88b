"""The web transport's settings (the ``transport:`` block of an agent file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voiceflow.config.base import ProviderConfig


class WebConfig(ProviderConfig):
    provider: Literal["web"] = "web"
    buffer: float = Field(
        0.3, ge=0.04, le=5,
        description="Seconds of agent audio queued ahead of the outgoing track: more rides out a "
        "slow voice, less makes barge-in drop less.",
    )
    ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN URLs (stun:host:port) the page and the server use to find a path "
        "between them. Empty: host addresses only, enough on one machine or a LAN.",
    )
