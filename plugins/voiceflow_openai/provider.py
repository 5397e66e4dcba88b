"""The OpenAI chat-completions LLM: one SDK client per config, shared by every session.

Decisions, and why:

* ``max_retries=0``. The fallback chain decides what happens after a failure (the next entry,
  within the caller's patience); the SDK's own retries would spend that patience silently, after
  backing off, on the same failing server.
* The SDK's timeouts are only a backstop. The chain's ``first_byte`` and ``idle`` deadlines end a
  slow or hung request; the SDK's read timeout sits above them (so it never races them) instead
  of its default ten minutes, which would otherwise hold a socket open long after the chain gave
  up, when the provider is used outside a chain.
* Closing the HTTP stream in ``finally``: a barged-in reply stops the server generating (and
  billing) tokens nobody will hear, at once.
* A stream that ends without a ``finish_reason`` is a failure, not a short answer: a connection
  cut cleanly mid-reply otherwise looks exactly like a finished one.

* Tool calls arrive in fragments (``delta.tool_calls``: an id and name first, then pieces of
  the arguments' JSON, keyed by ``index``); they are joined here and handed on whole, once the
  stream has finished, since a call cut off mid-arguments must never run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import anyio

from voiceflow.compute import run_in_thread
from voiceflow.frames import Message, ToolCall, ToolSpec
from voiceflow.providers import LLMProvider, ProviderError, ProviderUnavailable
from voiceflow_openai.config import OpenAIConfig
from voiceflow_openai.errors import map_error

PLACEHOLDER_KEY = "no-key-needed"
"""Sent to a non-OpenAI server when no key is configured (the SDK insists on one)."""

CLOSE_SECONDS = 1.0
"""Longest wait for the HTTP stream to close after the reply was stopped."""

BACKSTOP_MARGIN = 5.0
"""Seconds the SDK's own read timeout leaves above the chain's deadlines."""


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ProviderUnavailable(
            "openai: the openai package is not installed: pip install 'voiceflow[cloud]'"
        ) from exc
    return openai


class OpenAILLM(LLMProvider[OpenAIConfig]):
    """OpenAI chat completions, streamed (OpenAI, vLLM, Ollama, llama.cpp server, gateways)."""

    name = "openai"
    config_model = OpenAIConfig

    def __init__(self, config: OpenAIConfig) -> None:
        super().__init__(config)
        self._client: Any = None
        self._key: str | None = None

    async def prepare(self) -> None:
        """Build the client; no request is made, so a server that is down at boot is not fatal
        (the first request fails and the chain falls back)."""
        if self._client is not None:
            return
        # Importing the SDK takes about 0.4 s: not on the event loop, where other calls may run.
        openai = await run_in_thread(_import_openai)
        config = self.config
        # An empty key (``${OPENAI_API_KEY:-}`` with the variable unset) means no key.
        key = (config.api_key.get_secret_value() if config.api_key is not None else None) or None
        if key is None and config.is_official:
            key = os.environ.get("OPENAI_API_KEY") or None
            if key is None:
                raise ProviderUnavailable(
                    "openai: no API key: set api_key (e.g. api_key: ${OPENAI_API_KEY}) or the "
                    "OPENAI_API_KEY environment variable"
                )
        self._key = key
        timeouts = config.timeouts
        backstop = max(timeouts.first_byte, timeouts.idle) + BACKSTOP_MARGIN
        self._client = openai.AsyncOpenAI(
            api_key=key or PLACEHOLDER_KEY,
            base_url=config.endpoint,
            organization=config.organization,
            max_retries=0,
            timeout=openai.Timeout(backstop, connect=timeouts.connect, pool=timeouts.connect),
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def warm(self, messages: Sequence[Message]) -> None:
        """Open the HTTP connection while the greeting plays (``GET /models``), so the first
        reply does not also pay for TCP and TLS. Best effort: a failure is only logged."""
        if self._client is None:
            return
        try:
            await self._client.models.list()
        except Exception as exc:  # noqa: BLE001 - mapped, and the session logs it
            raise self._error(exc) from None

    def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Stream the reply's text deltas; closing the iterator closes the HTTP stream."""
        return self._text_only(self._stream([message.as_dict() for message in messages], ()))

    def stream_with_tools(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[str | ToolCall]:
        return self._stream([chat_message(message) for message in messages], tools)

    @staticmethod
    async def _text_only(items: AsyncGenerator[str | ToolCall, None]) -> AsyncIterator[str]:
        async with aclosing(items):  # closing this closes the HTTP stream at once
            async for item in items:
                if isinstance(item, str):
                    yield item

    async def _stream(
        self, payload: list[dict[str, Any]], tools: Sequence[ToolSpec]
    ) -> AsyncGenerator[str | ToolCall, None]:
        client = self._client
        if client is None:
            raise ProviderError("openai: stream() called before prepare()")
        params = self._parameters()
        if tools:
            params["tools"] = [tool_definition(tool) for tool in tools]
        try:
            stream = await client.chat.completions.create(
                model=self.config.model, messages=payload, stream=True, **params
            )
        except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped
            raise self._error(exc) from None
        finished = False
        calls = _ToolCallParts()
        try:
            while True:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # noqa: BLE001
                    raise self._error(exc) from None
                for choice in chunk.choices or ():
                    if choice.index != 0:
                        continue
                    if choice.finish_reason is not None:
                        finished = True
                    delta = choice.delta
                    if delta is None:
                        continue
                    for part in delta.tool_calls or ():
                        calls.add(part)
                    if delta.content:
                        yield delta.content
        finally:
            # Shielded: a cancelled reply (barge-in) must still close its socket now, not when
            # the garbage collector gets to it; bounded, so a stuck close cannot hold the reply.
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await stream.close()
        if not finished:
            raise ProviderError(
                f"openai: the reply from {self.config.endpoint} ended without a finish_reason "
                "(connection cut mid-reply?)"
            )
        for call in calls.complete(self.config.endpoint):
            yield call

    def _parameters(self) -> dict[str, Any]:
        config = self.config
        params: dict[str, Any] = {}
        if config.temperature is not None:
            params["temperature"] = config.temperature
        if config.top_p is not None:
            params["top_p"] = config.top_p
        if config.max_tokens is not None:
            params[config.max_tokens_parameter] = config.max_tokens
        if config.extra_body:
            params["extra_body"] = dict(config.extra_body)
        return params

    def _error(self, exc: BaseException) -> ProviderError:
        return map_error(exc, endpoint=self.config.endpoint, model=self.config.model, key=self._key)


def chat_message(message: Message) -> dict[str, Any]:
    """A context message in the chat-completions shape, tool calls and results included."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    entry: dict[str, Any] = message.as_dict()
    if message.tool_calls:
        entry["content"] = message.content or None
        entry["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    return entry


def tool_definition(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


class _ToolCallParts:
    """Streamed tool-call fragments, joined by their ``index``."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, str]] = {}

    def add(self, part: Any) -> None:
        entry = self._parts.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
        if part.id:
            entry["id"] = part.id
        function = part.function
        if function is not None:
            entry["name"] += function.name or ""
            entry["arguments"] += function.arguments or ""

    def complete(self, endpoint: str) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for index in sorted(self._parts):
            entry = self._parts[index]
            if not entry["name"]:
                raise ProviderError(f"openai: {endpoint} sent a tool call without a function name")
            calls.append(ToolCall(entry["id"] or f"call_{index}", entry["name"], entry["arguments"] or "{}"))
        return calls
