"""Who may reach the agents: the bind rule and the access-token check.

Listening on loopback only is safe without a token (only this machine can connect); any other
address exposes the agents, and with them the operator's provider keys and bills, so it needs a
token. The check runs before a request reaches a transport, except on paths a transport
authenticates itself (:meth:`~voiceflow.serving.api.ServedTransport.open_paths`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from urllib.parse import parse_qs

from voiceflow.serving.api import ASGIApp, ASGIReceive, ASGIScope, ASGISend, CloseCode
from voiceflow.serving.host import ServerState

TOKEN_ENV = "VOICEFLOW_ACCESS_TOKEN"
TOKEN_QUERY = "access_token"


class BindRefused(Exception):
    """Binding where the agents would be exposed, without a token to guard them."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Raise :class:`BindRefused` unless ``host`` is loopback or a token is set."""
    if token is not None and not token.strip():
        raise BindRefused("the access token is empty; set a long random one (e.g. `openssl rand -hex 32`)")
    if token is None and not is_loopback(host):
        raise BindRefused(
            f"--host {host} would let other machines call the agents, and nothing guards them: set "
            f"{TOKEN_ENV} (or --access-token) to a long random secret that callers must present, "
            "or bind to 127.0.0.1"
        )


def presented_token(scope: ASGIScope) -> str | None:
    """The token a request presents: ``Authorization: Bearer …`` or ``?access_token=…``."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credential.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get(TOKEN_QUERY)
    return values[0] if values else None


def guarded(app: ASGIApp, state: ServerState, open_paths: Collection[str]) -> ASGIApp:
    """``app`` behind the access token: a request without it gets 401 (HTTP) or a refused
    handshake (WebSocket, HTTP 403) and never reaches ``app``."""
    if state.token is None:
        return app
    exempt = frozenset(open_paths)

    async def guard(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] not in ("http", "websocket") or _relative(scope) in exempt:
            await app(scope, receive, send)
        elif state.token_ok(presented_token(scope)):
            await app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": int(CloseCode.POLICY), "reason": "unauthorized"})
        else:
            body = b'{"error": "unauthorized", "message": "present the access token"}'
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})

    return guard


def _relative(scope: ASGIScope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
