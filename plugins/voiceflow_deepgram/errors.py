"""Turning deepgram-sdk, websockets and httpx exceptions into errors an operator can act on,
without the key.

The texts reach the timeline, logs and the terminal. Two things are kept out of them: the key (a
server's error text may quote it, and a key read from the environment is unknown to the agent's
redactor), and the library's exception chain (raised ``from None``), whose messages and request
headers may carry the same. The SDK's ``ApiError`` prints every request header, for instance.
"""

from __future__ import annotations

import socket
from typing import Any

from voiceflow.providers import ProviderError, ProviderUnavailable

MAX_SERVER_MESSAGE = 200
"""Characters of a server's own error message kept in ours."""


def scrub(text: str, key: str | None) -> str:
    """``text`` without the key, on one line and shortened: server messages are other people's text."""
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= MAX_SERVER_MESSAGE else text[: MAX_SERVER_MESSAGE - 1] + "…"


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (bounded: chains can loop)."""
    found: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and len(found) < 10 and inner not in found:
        found.append(inner)
        inner = inner.__cause__ or inner.__context__
    return found


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in the operator's words: the socket error at the bottom of the
    chain ("connection refused"), not a library's generic text at the top."""
    for inner in chain(exc):
        if isinstance(inner, ConnectionRefusedError):
            return "connection refused: is the server running?"
        if isinstance(inner, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(inner, TimeoutError):
            return "no answer in time"
    texts = [str(inner).strip() for inner in chain(exc) if str(inner).strip()]
    return texts[-1] if texts else type(exc).__name__


def _server_message(body: Any) -> str:
    if isinstance(body, dict):
        for field in ("err_msg", "message", "description", "detail"):
            if isinstance(body.get(field), str):
                return str(body[field])
        return ""
    return body if isinstance(body, str) else ""


def status_error(status: int, body: Any, *, url: str, model: str, key: str | None) -> ProviderError:
    message = scrub(_server_message(body), key) or "no detail"
    if status == 401:
        return ProviderUnavailable(f"deepgram: the API key was refused (401); check api_key for {url}")
    if status == 403:
        return ProviderUnavailable(f"deepgram: the key may not use {model!r} at {url} (403): {message}")
    if status == 404:
        return ProviderUnavailable(f"deepgram: not found (404) at {url}: {message}; check base_url")
    if status == 429:
        return ProviderError(f"deepgram: rate limited or out of credit at {url} (429): {message}")
    if status >= 500:
        return ProviderError(f"deepgram: server error {status} at {url}: {message}")
    return ProviderError(
        f"deepgram: request refused ({status}) at {url}: {message}; check model {model!r} and the options"
    )


def closed_reason(exc: BaseException, key: str | None) -> str:
    """A websocket's close code and reason ("1011: NET-0001 ..."), or "dropped" without a close."""
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is None:
        return "dropped without a close frame"
    reason = scrub(str(getattr(rcvd, "reason", "") or ""), key)
    return f"closed with {getattr(rcvd, 'code', '?')}" + (f": {reason}" if reason else "")


def map_error(exc: BaseException, *, url: str, model: str, key: str | None) -> ProviderError:
    """The ProviderError to raise for an exception from the SDK, its websocket or HTTP stream."""
    if isinstance(exc, ProviderError):
        return exc
    from deepgram.core.api_error import ApiError
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    if isinstance(exc, ApiError):
        if exc.status_code is None:
            return ProviderError(f"deepgram: {url} failed: {scrub(_server_message(exc.body), key) or 'no detail'}")
        return status_error(int(exc.status_code), exc.body, url=url, model=model, key=key)
    if isinstance(exc, ConnectionClosed):
        return ProviderError(f"deepgram: {url} ended the stream ({closed_reason(exc, key)})")
    if isinstance(exc, InvalidURI):
        return ProviderUnavailable(f"deepgram: {url} is not a websocket URL")
    if isinstance(exc, InvalidHandshake):
        return ProviderError(f"deepgram: {url} did not open a websocket ({scrub(str(exc), key)})")
    if isinstance(exc, TimeoutError):
        return ProviderError(f"deepgram: {url} did not answer in time")
    if isinstance(exc, OSError):
        return ProviderError(f"deepgram: cannot reach {url} ({scrub(_reason(exc), key)})")
    if isinstance(exc, ValueError):  # json.JSONDecodeError from a malformed message
        return ProviderError(f"deepgram: {url} sent a malformed message ({scrub(str(exc), key)})")
    try:
        import httpx
    except ImportError:  # pragma: no cover - the SDK depends on it
        httpx = None  # type: ignore[assignment]
    if httpx is not None and isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"deepgram: {url} did not answer in time")
    if httpx is not None and isinstance(exc, httpx.RemoteProtocolError):
        return ProviderError(f"deepgram: {url} closed the connection mid-stream ({scrub(str(exc), key)})")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        return ProviderError(f"deepgram: cannot reach {url} ({scrub(_reason(exc), key)})")
    return ProviderError(f"deepgram: {type(exc).__name__}: {scrub(str(exc), key)}")
