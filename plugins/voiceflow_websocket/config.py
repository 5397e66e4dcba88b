"""The websocket transport's settings (the ``transport:`` block of an agent file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voiceflow.config.base import ProviderConfig


class WebSocketConfig(ProviderConfig):
    provider: Literal["websocket"] = "websocket"
    path: str = Field(
        "/ws",
        pattern=r"^/[A-Za-z0-9_./-]*$",
        description="Where the socket is, under the agent's URL (/agents/<name>).",
    )
    chunk_ms: int = Field(
        100, ge=20, le=1000, multiple_of=20,
        description="Agent audio per binary message, at most; each is followed by a mark.",
    )
    ahead: float = Field(
        0.5, ge=0.1, le=10,
        description="Seconds of agent audio sent ahead of what the client has acknowledged as "
        "played: more rides out network jitter, less makes barge-in flush less.",
    )
