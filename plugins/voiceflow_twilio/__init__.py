"""Phone calls through Twilio Media Streams, served by ``voiceflow serve``.

A Twilio number's voice webhook points at ``/agents/<name>/twilio/voice``; the answer opens a
two-way media stream (μ-law 8 kHz, 20 ms frames) to ``/agents/<name>/twilio/stream``. Barge-in
sends ``clear``, echoed marks say what the caller heard, the agent hangs up through Twilio's REST
API, keypad digits reach the conversation (:meth:`TwilioCall.on_dtmf`). The protocol, the set-up
and the limits: docs/transports.md.

Importing this module is cheap (no web framework): the routes are built only when served.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import structlog

from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.serving.api import ASGIApp, ServedTransport, SessionHost
from voiceflow_twilio.call import CallObserver, TwilioCall
from voiceflow_twilio.config import STREAM_PATH, VOICE_PATH, TwilioConfig

__all__ = ["CallObserver", "TwilioCall", "TwilioConfig", "TwilioTransport"]

log = structlog.get_logger("voiceflow.twilio")


class TwilioTransport(ServedTransport[TwilioConfig]):
    """Phone calls through Twilio Media Streams: TwiML webhook, μ-law stream, REST hang-up."""

    name = "twilio"
    config_model = TwilioConfig

    def __init__(self, config: TwilioConfig) -> None:
        super().__init__(config)
        self._observers: list[CallObserver] = []

    def app(self, host: SessionHost) -> ASGIApp:
        from voiceflow_twilio.endpoint import TwilioEndpoint

        if self.config.auth_token is None:
            log.warning("twilio: no auth_token: webhook requests are not checked for Twilio's signature "
                        "(only the access token guards them) and the agent cannot hang up through the "
                        "REST API", agent=host.agent_name)
        return TwilioEndpoint(host, self.config, self._observers).app()

    def open_paths(self) -> Collection[str]:
        """The stream checks its own ticket; the webhook checks Twilio's signature, when it can."""
        return (STREAM_PATH, VOICE_PATH) if self.config.auth_token is not None else (STREAM_PATH,)

    def urls(self, base: str) -> list[str]:
        if self.config.public_url is not None:
            base = self.config.public_url + urlsplit(base).path
        return [f"{base}{VOICE_PATH} (the number's voice webhook, HTTP POST)"]

    def on_call(self, observer: CallObserver) -> None:
        """Call ``observer(call)`` with each :class:`TwilioCall` before its session starts: an
        application (or a test) can attach its own keypad listener there
        (:meth:`TwilioCall.on_dtmf`), beside the session's."""
        self._observers.append(observer)


@hookimpl
def register_transports(register: Any) -> None:
    register(TwilioTransport)
