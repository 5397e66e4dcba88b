"""Webhook tools: the LLM's arguments POSTed as JSON to an HTTP service, its answer sent back.

httpx (async, with real timeouts and connection pooling) is imported only when an agent declares
a webhook tool. The response body is read up to :data:`MAX_RESPONSE_BYTES`: a tool's answer goes
into the LLM's context, and a service that streams megabytes must not blow it up.
"""

from __future__ import annotations

import json
from typing import Any

from voiceflow.config.tools import Webhook
from voiceflow.tools.api import ToolCallContext, ToolFailed, ToolResult

MAX_RESPONSE_BYTES = 64 * 1024
STATE_HEADER = "Voiceflow-State"
"""A response header a webhook may set to switch the conversation state."""


class WebhookClient:
    """One HTTP client for a call's webhook tools (connections are reused between calls)."""

    def __init__(self) -> None:
        self._client: Any = None

    async def post(
        self, hook: Webhook, tool: str, arguments: dict[str, Any], call: ToolCallContext
    ) -> ToolResult:
        client = self._client_now()
        headers = {name: value.get_secret_value() for name, value in hook.headers.items()}
        headers.update({"Voiceflow-Call-Id": call.call_id, "Voiceflow-Tool": tool})
        import httpx

        try:
            async with client.stream("POST", hook.url, json=arguments, headers=headers) as response:
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise ToolFailed(f"the service answered with more than {MAX_RESPONSE_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise ToolFailed(f"the service could not be reached ({type(exc).__name__})") from None
        text = body.decode("utf-8", errors="replace")
        if not 200 <= response.status_code < 300:
            raise ToolFailed(f"the service answered HTTP {response.status_code}: {text[:500]}")
        content: Any = text
        if "json" in response.headers.get("content-type", ""):
            try:
                content = json.loads(text)
            except ValueError:
                raise ToolFailed("the service answered with invalid JSON") from None
        return ToolResult(content, state=response.headers.get(STATE_HEADER) or None)

    def _client_now(self) -> Any:
        if self._client is None:
            import httpx

            # Timeouts are the tool's own (the toolbox's deadline); these only bound a connect.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0), follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
