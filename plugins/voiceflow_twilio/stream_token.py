"""The ticket that lets one call's media stream in.

Twilio cannot present the process's access token on the media WebSocket (no headers, and a
``<Stream>`` URL may not carry a query string), so the stream path is open, and the webhook
answer hands Twilio a ticket instead, as a ``<Parameter>`` that comes back in the stream's
``start`` message. The ticket is an HMAC over the agent, the call's SID and an expiry: it lets
in that call only, once, for that agent, within ``ttl`` seconds, and cannot be forged without
the key.

The key comes from the Twilio auth token when one is configured (so every instance behind a
load balancer accepts the tickets of the others); without it, a random key of this process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

PARAMETER = "voiceflow_ticket"
"""The ``<Parameter>`` name the ticket travels under."""


class StreamTickets:
    """Issues and checks tickets for one agent."""

    def __init__(
        self, agent: str, ttl: float, secret: str | None = None, now: Callable[[], float] = time.time
    ) -> None:
        self._agent = agent
        self._ttl = ttl
        self._now = now
        if secret:
            self._key = hmac.new(secret.encode(), b"voiceflow twilio stream ticket", hashlib.sha256).digest()
        else:
            self._key = secrets.token_bytes(32)
        self._spent: dict[str, float] = {}
        """Call SIDs whose ticket was used, until it would have expired anyway."""

    def issue(self, call_sid: str) -> str:
        expires = int(self._now() + self._ttl) + 1
        return f"{expires}.{self._mac(call_sid, expires)}"

    def admit(self, ticket: str | None, call_sid: str) -> bool:
        """Whether ``ticket`` was issued for ``call_sid``, has not expired and was not used
        before (by this process); it cannot be used again."""
        now = self._now()
        self._spent = {sid: until for sid, until in self._spent.items() if until >= now}
        if call_sid in self._spent or not self._valid(ticket, call_sid, now):
            return False
        self._spent[call_sid] = now + self._ttl + 1
        return True

    def _valid(self, ticket: str | None, call_sid: str, now: float) -> bool:
        if not ticket:
            return False
        expires_text, _, mac = ticket.partition(".")
        if not (expires_text.isascii() and expires_text.isdigit()) or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac(call_sid, expires).encode()):
            return False
        return now <= expires

    def _mac(self, call_sid: str, expires: int) -> str:
        message = f"{self._agent}\n{call_sid}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
