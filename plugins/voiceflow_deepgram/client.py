"""Building a deepgram-sdk client from a provider's config: the lazy import, the key, the URLs.

One ``AsyncDeepgramClient`` per provider instance, shared by every session. Decisions, and why:

* ``max_retries=0``: the fallback chain decides what happens after a failure, within the
  caller's patience; the SDK's own retries (with back-off) would spend it on the same server.
* The SDK's HTTP timeout is only a backstop above the chain's deadlines, which end a slow request
  first.
* The SDK is imported in a worker thread (about 0.2 s, not on the event loop where other calls
  run), and its two import-time DeprecationWarnings (it uses ``websockets.legacy``) are silenced
  there, so an application running with warnings as errors can still load it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from voiceflow.compute import run_in_thread
from voiceflow.providers import ProviderUnavailable
from voiceflow_deepgram.config import DeepgramAccess

PLACEHOLDER_KEY = "no-key-needed"
"""Sent to a self-hosted server when no key is configured (the SDK insists on one)."""

BACKSTOP_MARGIN = 5.0
"""Seconds the SDK's own HTTP timeout leaves above the chain's deadlines."""


def _import_sdk() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
            warnings.filterwarnings("ignore", "websockets.exceptions.InvalidStatusCode is deprecated",
                                    DeprecationWarning)
            import deepgram
            import deepgram.listen.v1.client
            import deepgram.speak.v1.client  # noqa: F401 - imported here, off the event loop
            import httpx
    except ImportError as exc:
        raise ProviderUnavailable(
            f"deepgram: the deepgram-sdk package is not installed: pip install 'voiceflow[cloud]' ({exc})"
        ) from exc
    return deepgram, httpx


@dataclass(frozen=True, slots=True)
class Connection:
    """A ready client and what error messages may say about it."""

    client: Any
    key: str | None
    """The key in use, to scrub from server texts (None when none is sent)."""
    http: Any
    """The client's ``httpx.AsyncClient`` (REST): ours, so that :meth:`aclose` can close it."""

    async def aclose(self) -> None:
        await self.http.aclose()


async def connect(config: DeepgramAccess, *, name: str) -> Connection:
    """Import the SDK and build its client; no request is made, so a server that is down at boot
    is not fatal (the first request fails and the chain falls back)."""
    deepgram, httpx = await run_in_thread(_import_sdk)
    # An empty key (``${DEEPGRAM_API_KEY:-}`` with the variable unset) means no key.
    key = (config.api_key.get_secret_value() if config.api_key is not None else None) or None
    if key is None and config.is_official:
        key = os.environ.get("DEEPGRAM_API_KEY") or None
        if key is None:
            raise ProviderUnavailable(
                f"{name}: no Deepgram API key: set api_key (e.g. api_key: ${{DEEPGRAM_API_KEY}}) or the "
                "DEEPGRAM_API_KEY environment variable"
            )
    environment = deepgram.DeepgramClientEnvironment(
        base=config.rest_root, production=config.websocket_root,
        agent=config.websocket_root, agent_rest=config.rest_root,
    )
    timeouts = config.timeouts
    backstop = max(timeouts.first_byte, timeouts.idle) + BACKSTOP_MARGIN
    http = httpx.AsyncClient(timeout=httpx.Timeout(backstop, connect=timeouts.connect), follow_redirects=True)
    client = deepgram.AsyncDeepgramClient(
        api_key=key or PLACEHOLDER_KEY, environment=environment, httpx_client=http, max_retries=0,
    )
    return Connection(client, key, http)
