"""Twilio Media Streams on the wire (twilio.com/docs/voice/media-streams/websocket-messages):
Twilio's JSON messages parsed into types, ours built. Nothing here knows about sockets or
sessions, so the protocol can be read, and tested, on its own.

From Twilio: ``connected``, ``start``, ``media``, ``mark``, ``dtmf``, ``stop``. Numbers such as
``sequenceNumber``, ``chunk`` and ``timestamp`` arrive as strings. To Twilio: ``media`` (base64
μ-law 8 kHz), ``mark`` (echoed back once the audio before it has played, or been cleared) and
``clear`` (drop the audio not yet played).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

ENCODING = "audio/x-mulaw"
SAMPLE_RATE = 8000
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


class ProtocolError(Exception):
    """A message from Twilio's side breaks the protocol: that call ends (only that call)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: dict[str, str] = field(default_factory=dict)
    """The ``<Parameter>`` values of the TwiML that opened the stream."""


@dataclass(frozen=True, slots=True)
class Media:
    payload: bytes
    """μ-law 8 kHz, one byte per sample (160 for Twilio's 20 ms)."""
    timestamp_ms: int | None
    """Milliseconds since the stream started, on Twilio's clock."""


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The call is over on Twilio's side (the caller hung up, or the call was completed)."""


Message = Connected | Start | Media | Mark | Dtmf | Stop

DTMF_DIGITS = frozenset("0123456789*#ABCD")


def parse(text: str, max_bytes: int) -> Message:
    """One text message from Twilio; raises :class:`ProtocolError`."""
    if len(text) > max_bytes:
        raise ProtocolError("too_big", f"a message of {len(text)} characters is over the limit of {max_bytes}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_message", "not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "not a JSON object")
    event = data.get("event")
    match event:
        case "connected":
            return Connected(str(data.get("protocol", "")))
        case "start":
            return _start(_object(data, "start"), data)
        case "media":
            return _media(_object(data, "media"))
        case "mark":
            return Mark(_text(_object(data, "mark"), "name", "mark"))
        case "dtmf":
            digit = _text(_object(data, "dtmf"), "digit", "dtmf")
            if digit not in DTMF_DIGITS:
                raise ProtocolError("bad_message", f"dtmf: {digit!r} is not a keypad digit")
            return Dtmf(digit)
        case "stop":
            return Stop()
    raise ProtocolError("bad_message", f"unknown event {event!r}")


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ProtocolError("bad_message", f"{name}: the {name!r} object is missing")
    return value


def _text(data: dict[str, Any], name: str, event: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_message", f"{event}: {name!r} must be a non-empty string")
    return value


def _sid(data: dict[str, Any], name: str) -> str:
    value = _text(data, name, "start")
    if not _SID.match(value):
        raise ProtocolError("bad_message", f"start: {name} {value[:40]!r} is not a Twilio SID")
    return value


def _start(start: dict[str, Any], data: dict[str, Any]) -> Start:
    fmt = start.get("mediaFormat")
    if not isinstance(fmt, dict):
        raise ProtocolError("bad_message", "start: 'mediaFormat' is missing")
    encoding, rate, channels = fmt.get("encoding"), _number(fmt.get("sampleRate")), _number(fmt.get("channels"))
    if encoding != ENCODING or rate != SAMPLE_RATE or channels != 1:
        raise ProtocolError("unsupported_format", f"start: media format {encoding!r} at {rate!r} Hz, "
                            f"{channels!r} channel(s); expected {ENCODING} at {SAMPLE_RATE} Hz, mono")
    parameters = start.get("customParameters", {})
    if not isinstance(parameters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()):
        raise ProtocolError("bad_message", "start: 'customParameters' must map names to strings")
    stream_sid = _sid(start, "streamSid")
    if data.get("streamSid", stream_sid) != stream_sid:
        raise ProtocolError("bad_message", "start: two different stream SIDs")
    return Start(stream_sid, _sid(start, "callSid"), _sid(start, "accountSid"), dict(parameters))


def _media(media: dict[str, Any]) -> Media:
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise ProtocolError("bad_media", "media: 'payload' must be base64 text")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_media", "media: 'payload' is not valid base64") from None
    timestamp = media.get("timestamp")
    ms = None if timestamp is None else _number(timestamp)
    if timestamp is not None and ms is None:
        raise ProtocolError("bad_message", f"media: 'timestamp' {str(timestamp)[:20]!r} is not a number")
    return Media(audio, ms)


def _number(value: object) -> int | None:
    """An integer sent as a number or, as Twilio does, as a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        return int(value)
    return None


# --- to Twilio -----------------------------------------------------------------------------


def media(stream_sid: str, payload: bytes) -> str:
    return _message("media", stream_sid, media={"payload": base64.b64encode(payload).decode("ascii")})


def mark(stream_sid: str, name: str) -> str:
    return _message("mark", stream_sid, mark={"name": name})


def clear(stream_sid: str) -> str:
    return _message("clear", stream_sid)


def _message(event: str, stream_sid: str, **fields: Any) -> str:
    return json.dumps({"event": event, "streamSid": stream_sid, **fields}, separators=(",", ":"))
