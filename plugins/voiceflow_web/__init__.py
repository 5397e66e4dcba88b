"""The browser transport: a page served on the agent's URL calls the agent over WebRTC, with
the microphone, and shows the conversation as it happens (docs/transports.md).

Importing this module is cheap (no aiortc, no web framework): they are imported only when the
transport is served, so ``voiceflow plugins`` and schema generation work without the ``web``
extra installed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.serving.api import ASGIApp, ServedTransport, SessionHost
from voiceflow_web.config import WebConfig

__all__ = ["WebConfig", "WebTransport"]

PAGE_FILES = ("/", "/page.js", "/level-meter.js", "/rtp-anchor.js")
"""The page and its scripts: static, the same for every agent and holding no secret, so they
are open (a browser cannot put a bearer token on a worklet or worker fetch); placing a call
still needs the token."""


class WebTransport(ServedTransport[WebConfig]):
    """Browser page: the microphone over WebRTC, live transcript and latency (served by `voiceflow serve`)."""

    name = "web"
    config_model = WebConfig

    def app(self, host: SessionHost) -> ASGIApp:
        from voiceflow_web.endpoint import build_app

        return build_app(host, self.config)

    def open_paths(self) -> Collection[str]:
        return PAGE_FILES

    def urls(self, base: str) -> list[str]:
        return [base + "/"]


@hookimpl
def register_transports(register: Any) -> None:
    register(WebTransport)
