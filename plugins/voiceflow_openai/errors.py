"""Turning the openai SDK's exceptions into errors an operator can act on, without the key.

The texts reach the timeline, logs and the terminal. Two things are kept out of them: the key
(OpenAI's own 401 quotes part of it, a careless gateway may quote all of it, and a key read from
the environment is unknown to the agent's redactor), and the SDK's traceback chain (raised
``from None``), whose messages and request objects may carry the same.
"""

from __future__ import annotations

import socket
from typing import Any

from voiceflow.providers import ProviderError, ProviderUnavailable

MAX_SERVER_MESSAGE = 200
"""Characters of a server's own error message kept in ours: enough for "model not found"."""


def scrub(text: str, key: str | None) -> str:
    """``text`` without the key (and shortened): server messages are other people's text."""
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= MAX_SERVER_MESSAGE else text[: MAX_SERVER_MESSAGE - 1] + "…"


def _server_message(exc: Any, key: str | None) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        message = getattr(exc, "message", None) or ""
    return scrub(str(message), key)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (bounded: chains can loop)."""
    found: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and len(found) < 10 and inner not in found:
        found.append(inner)
        inner = inner.__cause__ or inner.__context__
    return found


def _transport_reason(exc: BaseException) -> str:
    """Why the connection failed, in the operator's words: the socket error at the bottom of the
    chain ("connection refused"), not the SDK's "Connection error." at its top."""
    chain = _chain(exc)
    for inner in chain:
        if isinstance(inner, ConnectionRefusedError):
            return "connection refused: is the server running?"
        if isinstance(inner, socket.gaierror):
            return "the host name does not resolve"
    for inner in chain[1:]:
        text = str(inner).strip()
        if text and not isinstance(inner, OSError):
            return text
    texts = [str(inner).strip() for inner in chain[1:] if str(inner).strip()]
    return texts[-1] if texts else type(exc).__name__


def map_error(exc: BaseException, *, endpoint: str, model: str, key: str | None) -> ProviderError:
    """The ProviderError to raise for an exception from the SDK (or from reading its stream)."""
    import openai

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"openai: {endpoint} did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        reason = scrub(_transport_reason(exc), key)
        if "incomplete" in reason.lower() or "closed" in reason.lower() or "disconnect" in reason.lower():
            return ProviderError(f"openai: {endpoint} closed the connection mid-reply ({reason})")
        return ProviderError(f"openai: cannot reach {endpoint} ({reason})")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, endpoint=endpoint, model=model, key=key)
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return ProviderError(f"openai: {endpoint} reported an error mid-stream: {_server_message(exc, key)}")
    if isinstance(exc, ValueError):  # json.JSONDecodeError from a malformed event
        return ProviderError(f"openai: {endpoint} sent a malformed stream event ({scrub(str(exc), key)})")
    return ProviderError(f"openai: {type(exc).__name__}: {scrub(str(exc), key)}")


def _status_error(exc: Any, *, endpoint: str, model: str, key: str | None) -> ProviderError:
    status = int(exc.status_code)
    if status == 401:
        return ProviderUnavailable("openai: the API key was refused (401); check api_key for " + endpoint)
    if status == 403:
        return ProviderUnavailable(
            f"openai: the key may not use {model!r} at {endpoint} (403); check the key's project and permissions"
        )
    message = _server_message(exc, key)
    if status == 404:
        return ProviderUnavailable(
            f"openai: not found (404) at {endpoint}: {message or 'no detail'}; check model {model!r} "
            "and that base_url ends where the API's /chat/completions lives (usually /v1)"
        )
    if status == 429:
        return ProviderError(f"openai: rate limited or out of quota at {endpoint} (429): {message or 'no detail'}")
    if status >= 500:
        return ProviderError(f"openai: server error {status} at {endpoint}: {message or 'no detail'}")
    return ProviderError(f"openai: request refused ({status}) at {endpoint}: {message or 'no detail'}")
