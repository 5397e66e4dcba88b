"""What the page and the server say to each other, parsed into types and built from them.

Two channels, each for what it does best:

* the **signalling WebSocket** (``/call``) carries the offer and answer, and then holds the
  call's life: its close is a hang-up, and the server's last word (``hangup`` or ``error``)
  comes on it, as on the WebSocket audio API;
* the **data channel** (label ``voiceflow``, inside the WebRTC connection) carries what belongs
  to the media: the page's playback reports, and the session's transcript and turn events,
  which reach the page in step with the audio they describe.

Nothing here knows about sockets or aiortc; docs/transports.md describes the messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from voiceflow.serving.api import CloseCode

RTP_MODULO = 1 << 32


class ProtocolError(Exception):
    """The page broke the protocol: the call ends with ``error`` and ``close``."""

    def __init__(self, code: str, message: str, close: CloseCode = CloseCode.INVALID) -> None:
        super().__init__(message)
        self.code = code
        self.close = close


# --- signalling (WebSocket) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = ""


def parse_signal(text: str, max_bytes: int) -> Offer | HangUp:
    """One text message on the signalling socket; raises :class:`ProtocolError`."""
    data = _object(text, max_bytes)
    match data.get("type"):
        case "offer":
            sdp = data.get("sdp")
            if not isinstance(sdp, str) or not sdp.startswith("v=0"):
                raise ProtocolError("bad_message", "offer: 'sdp' must be the browser's session description")
            return Offer(sdp)
        case "hangup":
            reason = data.get("reason", "")
            return HangUp(reason if isinstance(reason, str) else "")
        case other:
            raise ProtocolError("bad_message", f"unknown message type {other!r} (expected offer or hangup)")


# --- in the call (data channel) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The page can hear: its data channel is open and the agent's track is attached."""

    reports_playout: bool


@dataclass(frozen=True, slots=True)
class Anchor:
    """The RTP timestamp of the first agent packet the page received (the first one sent)."""

    rtp: int


@dataclass(frozen=True, slots=True)
class Played:
    """The agent audio with this RTP timestamp was being played out ``age`` seconds ago."""

    rtp: int
    age: float


PageMessage = Hello | Anchor | Played


def parse_page(text: str, max_bytes: int) -> PageMessage:
    """One message on the data channel; raises :class:`ProtocolError`."""
    data = _object(text, max_bytes)
    match data.get("type"):
        case "hello":
            return Hello(data.get("playout") == "rtp")
        case "anchor":
            return Anchor(_rtp(data))
        case "played":
            age = data.get("age_ms", 0)
            if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age < 60_000:
                raise ProtocolError("bad_message", "played: 'age_ms' must be milliseconds (0 to 60000)")
            return Played(_rtp(data), age / 1000)
        case other:
            raise ProtocolError("bad_message", f"unknown message type {other!r} (expected hello, anchor or played)")


def _rtp(data: dict[str, Any]) -> int:
    rtp = data.get("rtp")
    if isinstance(rtp, bool) or not isinstance(rtp, int) or not 0 <= rtp < RTP_MODULO:
        raise ProtocolError("bad_message", f"{data['type']}: 'rtp' must be an RTP timestamp (0 to 2^32 - 1)")
    return rtp


def _object(text: str, max_bytes: int) -> dict[str, Any]:
    if len(text) > max_bytes:
        raise ProtocolError("too_big", f"a message of {len(text)} characters is over the limit of {max_bytes}",
                            CloseCode.TOO_BIG)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_message", "a message must be a JSON object") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    return data


def message(kind: str, /, **fields: Any) -> str:
    """A server → page message (either channel)."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def session_event(event: str, data: dict[str, Any]) -> str | None:
    """A session event (``CallTransport.notify``) as the page's message, in the shapes of the
    WebSocket audio API (``transcript``, ``turn``); ``None`` for events the page does not show."""
    match event:
        case "transcript":
            return message("transcript", turn=data["turn"], text=data["text"])
        case "turn_started":
            return message("turn", event="started", turn=data["turn"], kind=data["kind"])
        case "turn_ended":
            fields = dict(data)
            m2e = fields.pop("mouth_to_ear", None)
            return message("turn", event="ended", **fields, mouth_to_ear_ms=None if m2e is None else round(1000 * m2e))
        case _:
            return None
