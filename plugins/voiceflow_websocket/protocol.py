"""The WebSocket audio API's wire format: client messages parsed into types, server messages
built from them. Nothing here knows about sockets, sessions or web frameworks, so the protocol is
readable (and testable) on its own; docs/transports.md describes it for client authors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from voiceflow.serving.api import ClientError, CloseCode, json_object
from voiceflow_websocket.rate import RATES

MAX_METADATA_BYTES = 4096


@dataclass(frozen=True, slots=True)
class AudioFormat:
    sample_rate: int
    encoding: str = "pcm16"
    channels: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "sample_rate": self.sample_rate, "channels": self.channels}


@dataclass(frozen=True, slots=True)
class Start:
    format: AudioFormat
    acknowledges_marks: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    receives_keys: bool = False
    """The client takes the agent's keypad presses as ``dtmf`` messages (and passes them on as
    keys); a client that does not say so hears them as tones in the agent's audio instead, so
    clients written before the message existed never receive it."""
    pauses: bool = False
    """The client can hold its playback on ``pause`` and play on from there on ``resume`` (and
    acknowledges marks, so the server knows what it has played): the agent then goes quiet at
    the caller's first syllable instead of talking on until the barge-in is decided."""


@dataclass(frozen=True, slots=True)
class Mark:
    id: int


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = ""


ClientMessage = Start | Mark | HangUp


def parse(text: str) -> ClientMessage:
    """One text message from the client; raises :class:`~voiceflow.serving.api.ClientError`."""
    data = json_object(text)
    kind = data.get("type")
    if kind == "start":
        return _start(data)
    if kind == "mark":
        mark_id = data.get("id")
        if isinstance(mark_id, bool) or not isinstance(mark_id, int):
            raise ClientError("bad_message", "mark: 'id' must be the integer of a mark the server sent")
        return Mark(mark_id)
    if kind == "hangup":
        reason = data.get("reason", "")
        return HangUp(reason if isinstance(reason, str) else "")
    raise ClientError("bad_message", f"unknown message type {kind!r} (expected start, mark or hangup)")


def _start(data: dict[str, Any]) -> Start:
    fmt = data.get("format")
    if not isinstance(fmt, dict):
        raise ClientError("bad_message", "start: 'format' must be an object such as "
                                           '{"encoding": "pcm16", "sample_rate": 16000, "channels": 1}')
    encoding, rate, channels = fmt.get("encoding", "pcm16"), fmt.get("sample_rate"), fmt.get("channels", 1)
    if encoding != "pcm16":
        raise ClientError("unsupported_format", f"encoding {encoding!r} is not supported (only 'pcm16')",
                            CloseCode.UNSUPPORTED)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in RATES:
        raise ClientError("unsupported_format",
                            f"sample_rate must be one of {', '.join(map(str, RATES))} (got {rate!r})",
                            CloseCode.UNSUPPORTED)
    if channels != 1 or isinstance(channels, bool):
        raise ClientError("unsupported_format", f"only mono audio is supported (channels: 1, got {channels!r})",
                            CloseCode.UNSUPPORTED)
    acks = data.get("acknowledges_marks", True)
    if not isinstance(acks, bool):
        raise ClientError("bad_message", "start: 'acknowledges_marks' must be true or false")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict) or len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise ClientError("bad_message", f"start: 'metadata' must be an object of at most {MAX_METADATA_BYTES} bytes")
    keys = data.get("receives_keys", False)
    if not isinstance(keys, bool):
        raise ClientError("bad_message", "start: 'receives_keys' must be true or false")
    pauses = data.get("pauses", False)
    if not isinstance(pauses, bool):
        raise ClientError("bad_message", "start: 'pauses' must be true or false")
    if pauses and not acks:
        raise ClientError("bad_message", "start: 'pauses' needs 'acknowledges_marks': a pause holds "
                                           "what the client has not played, which only its marks tell")
    return Start(AudioFormat(rate), acks, metadata, keys, pauses)


def check_audio(data: bytes, max_bytes: int) -> None:
    """Raise unless ``data`` is a usable binary audio message."""
    if len(data) > max_bytes:
        raise ClientError("too_big", f"a message of {len(data)} bytes is over the limit of {max_bytes}",
                            CloseCode.TOO_BIG)
    if len(data) % 2:
        raise ClientError("bad_audio", f"{len(data)} bytes is not a whole number of PCM16 samples")


def message(kind: str, /, **fields: Any) -> str:
    """A server → client text message."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def error(failure: ClientError, **extra: Any) -> str:
    return message("error", code=failure.code, message=str(failure), **extra)
