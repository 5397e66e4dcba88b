"""ElevenLabs failures → errors an operator can act on, never holding the key.

ElevenLabs says what went wrong in three places: an HTTP status with a JSON body
``{"detail": {"status": "invalid_api_key", "message": …}}`` (the SDK's ``ApiError``), a websocket
close code with a reason (1008 "Invalid API key", the quota message, the inactivity message), or
a socket error before anything was said. The key is kept out of every text (a careless proxy may
quote it, and a key read from the environment is unknown to the agent's redactor), and the
underlying exception chain is dropped (raised ``from None``), since its messages and request
objects may carry the same.
"""

from __future__ import annotations

import socket
from typing import Any

from voiceflow.providers import ProviderError, ProviderUnavailable

MAX_SERVER_MESSAGE = 200
"""Characters of the service's own message kept in ours: enough for "voice not found"."""


KEY_PIECE = 8
"""The shortest run of the key's characters that is redacted on its own (a message cut off
mid-key, such as a websocket close reason at its 123-byte limit, still holds most of it)."""


def scrub(text: str, key: str | None) -> str:
    """``text`` without the key or any long piece of it, on one line, shortened: server
    messages are other people's text."""
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
        for length in range(len(key) - 1, KEY_PIECE - 1, -1):
            for start in range(len(key) - length + 1):
                piece = key[start : start + length]
                if piece in text:
                    text = text.replace(piece, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= MAX_SERVER_MESSAGE else text[: MAX_SERVER_MESSAGE - 1] + "…"


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and len(found) < 10 and inner not in found:
        found.append(inner)
        inner = inner.__cause__ or inner.__context__
    return found


def unreachable(exc: BaseException, url: str) -> ProviderError | None:
    """A failure to connect at all, named by its cause; None if ``exc`` is something else."""
    for inner in _chain(exc):
        if isinstance(inner, ConnectionRefusedError):
            return ProviderError(f"elevenlabs: cannot reach {url} (connection refused: is the server running?)")
        if isinstance(inner, socket.gaierror):
            return ProviderError(f"elevenlabs: cannot reach {url} (the host name does not resolve)")
    return None


def refused(status: int, kind: str, message: str, *, url: str, voice_id: str, model_id: str,
            how: str | None = None) -> ProviderError:
    """The error for a refusal by status (HTTP, or the status a websocket close stands for).

    ``kind`` is ElevenLabs' ``detail.status`` (``invalid_api_key``, ``quota_exceeded``,
    ``voice_not_found``, ...) when known; ``message`` its scrubbed text; ``how`` what the service
    actually answered, when it was not that HTTP status (``"closed 1008"``)."""
    shown = how or str(status)
    detail = f": {message}" if message else ""
    if kind == "quota_exceeded" or "quota" in message.lower():
        return ProviderError(f"elevenlabs: out of credits (quota exceeded, {shown}) at {url}{detail}")
    if status == 401 or kind in ("invalid_api_key", "needs_authorization"):
        return ProviderUnavailable(f"elevenlabs: the API key was refused ({shown}); check api_key for {url}")
    if status == 403:
        return ProviderUnavailable(
            f"elevenlabs: the key may not use voice {voice_id!r} or model {model_id!r} ({shown}){detail}")
    if status == 404 or kind == "voice_not_found":
        return ProviderUnavailable(f"elevenlabs: voice {voice_id!r} not found ({shown}) at {url}; check voice_id")
    if status == 429:
        return ProviderError(f"elevenlabs: rate limited or too many concurrent requests ({shown}) at {url}{detail}")
    if status >= 500:
        return ProviderError(f"elevenlabs: server error ({shown}) at {url}{detail}")
    return ProviderError(f"elevenlabs: request refused ({shown}) at {url}{detail}")


def body_detail(body: Any, key: str | None) -> tuple[str, str]:
    """(``detail.status``, scrubbed ``detail.message``) from an ElevenLabs error body."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        kind, message = detail.get("status"), detail.get("message")
        return (kind if isinstance(kind, str) else "", scrub(str(message or ""), key))
    if isinstance(detail, list | str):  # validation errors (422) come as a list
        return "", scrub(str(detail), key)
    return "", scrub(str(body or ""), key)


_CLOSE_STATUS = (
    ("invalid api key", 401, "invalid_api_key"),
    ("api key", 401, "invalid_api_key"),
    ("unauthori", 401, "invalid_api_key"),
    ("quota", 401, "quota_exceeded"),
    ("voice", 404, "voice_not_found"),
    ("concurrent", 429, ""),
    ("rate limit", 429, ""),
)


def closed(code: int | None, reason: str, *, key: str | None, url: str, voice_id: str, model_id: str,
           started: bool) -> ProviderError:
    """The error for a websocket the service closed (or dropped) before the clause was done."""
    text = scrub(reason, key)
    lowered = text.lower()
    if code == 1008:
        if "have not received" in lowered or "timeout" in lowered:
            return ProviderError(f"elevenlabs: the socket was closed for inactivity at {url}: {text}")
        for needle, status, kind in _CLOSE_STATUS:
            if needle in lowered and (needle != "voice" or "not found" in lowered):
                return refused(status, kind, text, url=url, voice_id=voice_id, model_id=model_id,
                               how="closed 1008")
        return ProviderError(f"elevenlabs: {url} refused the request (1008 policy violation): {text or 'no reason'}")
    if code == 1011:
        return ProviderError(f"elevenlabs: server error at {url} (1011): {text or 'no reason'}")
    if code is None or code == 1006:
        when = "mid-clause" if started else "before any audio"
        return ProviderError(f"elevenlabs: {url} dropped the connection {when} (no close frame)")
    return ProviderError(f"elevenlabs: {url} closed the socket before the clause was done ({code}: {text or 'no reason'})")


def worth_a_fresh_socket(code: int | None, reason: str) -> bool:
    """Whether a socket closed this way before any audio may just have gone stale: dropped, closed
    normally or for a restart, or for inactivity. Not a refusal: a fresh socket would meet it too."""
    if code in (None, 1000, 1001, 1006, 1012, 1013):
        return True
    return code == 1008 and "have not received" in reason.lower()
