"""The TwiML documents the webhook answers with (twilio.com/docs/voice/twiml)."""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

CONTENT_TYPE = "text/xml; charset=utf-8"
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def connect_stream(url: str, parameters: Mapping[str, str]) -> str:
    """Answer the call and open a bidirectional media stream to ``url``.

    ``<Connect>`` (not ``<Start>``) is what makes the stream two-way: Twilio plays what the
    socket sends and holds the call until the socket closes. Nothing follows it, so when the
    socket closes the call ends."""
    params = "".join(f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
                     for name, value in parameters.items())
    return f"{_HEAD}<Response><Connect><Stream url={quoteattr(url)}>{params}</Stream></Connect></Response>"


def reject_busy() -> str:
    """Refuse the call unanswered: the caller hears a busy tone, and it is not billed as answered."""
    return f'{_HEAD}<Response><Reject reason="busy"/></Response>'
