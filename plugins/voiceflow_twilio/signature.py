"""``X-Twilio-Signature``: proof that a webhook request comes from Twilio.

Twilio's documented algorithm (twilio.com/docs/usage/security): take the full URL Twilio
requested (scheme, host, path, query), append each POST parameter's name and value with the
parameters sorted by name, HMAC-SHA1 the result with the account's auth token, and send the
digest in base64. Implemented here rather than through the ``twilio`` package: it is a dozen
lines of the standard library, and the package would bring the whole REST client with it.

The URL must be the one Twilio used, which behind a proxy or tunnel is not the one this process
sees: that is what the transport's ``public_url`` is for. Twilio may sign a URL with or without
its default port (``:443``), so both spellings are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

HEADER = "X-Twilio-Signature"
_DEFAULT_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a POST of ``params`` (form fields) to ``url``."""
    text = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], presented: str | None) -> bool:
    """Whether ``presented`` signs this request (constant-time comparison)."""
    if not presented:
        return False
    fields = list(params)
    return any(
        hmac.compare_digest(sign(auth_token, candidate, fields).encode(), presented.encode("utf-8", "replace"))
        for candidate in port_spellings(url)
    )


def port_spellings(url: str) -> list[str]:
    """``url`` as given, plus with its default port written out or left out."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname
    if default is None or host is None or parts.username is not None or parts.password is not None:
        return [url]
    try:
        port = parts.port
    except ValueError:
        return [url]
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        return [url, urlunsplit(parts._replace(netloc=f"{host}:{default}"))]
    if port == default:
        return [url, urlunsplit(parts._replace(netloc=host))]
    return [url]
