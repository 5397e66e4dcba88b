"""The WebSocket audio API: programmatic clients send PCM16 and JSON control messages over one
WebSocket, served by ``voiceflow serve`` (the protocol: docs/transports.md).

Importing this module is cheap (no web framework): the socket handling is imported only when the
transport is served.
"""

from __future__ import annotations

from typing import Any

from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.serving.api import ASGIApp, ServedTransport, SessionHost
from voiceflow_websocket.config import WebSocketConfig

__all__ = ["WebSocketConfig", "WebSocketTransport"]


class WebSocketTransport(ServedTransport[WebSocketConfig]):
    """WebSocket audio API: PCM16 in and out, JSON control messages (served by `voiceflow serve`)."""

    name = "websocket"
    config_model = WebSocketConfig

    def app(self, host: SessionHost) -> ASGIApp:
        from voiceflow_websocket.endpoint import build_app

        return build_app(host, self.config)

    def urls(self, base: str) -> list[str]:
        return ["ws" + base.removeprefix("http") + self.config.path]


@hookimpl
def register_transports(register: Any) -> None:
    register(WebSocketTransport)
