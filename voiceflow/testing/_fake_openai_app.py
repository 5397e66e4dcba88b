"""The ASGI side of :mod:`voiceflow.testing.fake_openai`: OpenAI's wire format on Starlette.

It runs on the fake server's own thread and event loop. Starlette is imported when this module
is, and this module only when a fake server starts, so ``voiceflow.testing`` stays importable
without the ``test`` extra. Everything here talks to the owning :class:`FakeOpenAI` through
``server`` (replies, faults, the request log), never through globals.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from voiceflow.tasks import create_task_group
from voiceflow.testing.fakes import TOOL_CALL_MARK

if TYPE_CHECKING:
    from voiceflow.testing.fake_openai import FakeOpenAI, Fault, ReceivedRequest

_WORD = re.compile(r"\s*\S+")


def tokens(text: str) -> list[str]:
    """The reply cut into deltas the way a model streams it: one word (with its leading space)."""
    return _WORD.findall(text)


def error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def build_app(server: FakeOpenAI) -> Starlette:
    async def models(request: Request) -> Response:
        record = server._record(request, None)
        refused = _auth(server, request, record)
        if refused is not None:
            return refused
        record.finished_at = time.monotonic()
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "voiceflow-fake"}
                for m in server.models]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = server._record(request, body if isinstance(body, dict) else None)
        fault = server._fault_for(record)
        record.fault = fault.kind if fault is not None else None
        refused = _auth(server, request, record, refuse=fault is not None and fault.kind == "auth")
        if refused is not None:
            return refused
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            record.finished_at = time.monotonic()
            return JSONResponse(error_body("'model' and 'messages' are required", "invalid_request_error", None), 400)
        if fault is not None and fault.kind == "status":
            return await _status_fault(server, record, fault)
        reply = server._reply_for(record)
        return _Completion(server, record, fault, reply)

    return Starlette(routes=[
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ])


def _auth(server: FakeOpenAI, request: Request, record: ReceivedRequest, *, refuse: bool = False) -> Response | None:
    header = request.headers.get("authorization", "")
    presented = header[7:] if header.startswith("Bearer ") else None
    record.authorized = presented == server.api_key and not refuse
    if record.authorized:
        return None
    record.finished_at = time.monotonic()
    if presented is None:
        message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
    else:
        shown = presented if server.leak_key_in_errors else presented[:3] + "***" + presented[-4:]
        message = f"Incorrect API key provided: {shown}. You can find your API key at https://example.invalid/keys."
    return JSONResponse(error_body(message, "invalid_request_error", "invalid_api_key"), 401)


async def _status_fault(server: FakeOpenAI, record: ReceivedRequest, fault: Fault) -> Response:
    await server._pause(fault.seconds)
    record.finished_at = time.monotonic()
    quoted = f" (key {server.api_key})" if server.leak_key_in_errors else ""
    if fault.status == 429:
        body = error_body(f"Rate limit reached for {record.model} on requests per min{quoted}. Please try again "
                          "in 20s.", "requests", "rate_limit_exceeded")
        return JSONResponse(body, 429, headers={"retry-after": "20"})
    body = error_body(f"The server had an error while processing your request{quoted}. Sorry about that!",
                      "server_error", None)
    return JSONResponse(body, fault.status)


class _Completion(Response):
    """One chat completion: streamed as server-sent events, or one JSON body.

    A raw ASGI response rather than Starlette's StreamingResponse, because the faults need what a
    well-behaved response never does: drop the connection mid-body, or never start the response,
    and note the moment the client went away.
    """

    def __init__(self, server: FakeOpenAI, record: ReceivedRequest, fault: Fault | None, reply: str) -> None:
        super().__init__()
        self.server = server
        self.record = record
        self.fault = fault
        body = record.body or {}
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        self.tool_calls = [
            (f"call_fake{record.index}_{number}", name, arguments)
            for number, (name, arguments) in enumerate(TOOL_CALL_MARK.findall(reply))
        ] if body.get("tools") else []
        deltas = tokens(" ".join(TOOL_CALL_MARK.sub("", reply).split()))
        self.finish_reason = "tool_calls" if self.tool_calls else "stop"
        if isinstance(limit, int) and 0 < limit < len(deltas):
            deltas, self.finish_reason = deltas[:limit], "length"
        self.deltas = deltas
        self.id = f"chatcmpl-fake{record.index}"
        self.model = str(body.get("model", ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        produce: Callable[[Send], Awaitable[None]] = (
            self._stream if self.record.stream else self._whole)
        async with create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                if self.record.finished_at is None:
                    self.record.disconnected_at = time.monotonic()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                await produce(send)
            except _Cut:
                pass  # return without completing the response: uvicorn drops the connection
            finally:
                tg.cancel_scope.cancel()

    async def _begin(self, send: Send, content_type: bytes) -> None:
        fault, server = self.fault, self.server
        if fault is not None and fault.kind == "hang":
            await server._pause(None)
            raise _Cut
        await server._pause(server.ttfb)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"x-request-id", self.id.encode())]})

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.model, "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    async def _stream(self, send: Send) -> None:
        fault, server, record = self.fault, self.server, self.record
        await self._begin(send, b"text/event-stream; charset=utf-8")

        async def emit(payload: bytes) -> None:
            await send({"type": "http.response.body", "body": payload, "more_body": True})

        await emit(self._chunk({"role": "assistant", "content": ""}))
        for i, delta in enumerate(self.deltas):
            if fault is not None and i == fault.after:
                await self._mid_stream_fault(emit)
            await server._pause(fault.seconds if fault is not None and fault.kind == "slow_first_byte" and i == 0
                                else server.token_interval if i else 0.0)
            await emit(self._chunk({"content": delta}))
            record.chunks_sent += 1
            if record.first_chunk_at is None:
                record.first_chunk_at = time.monotonic()
        if fault is not None and fault.after >= len(self.deltas):
            await self._mid_stream_fault(emit)
        for part in self._tool_call_deltas():
            await server._pause(server.token_interval)
            await emit(self._chunk(part))
        await emit(self._chunk({}, self.finish_reason))
        options = (record.body or {}).get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": self.model, "choices": [], "usage": self._usage()}
            await emit(b"data: " + json.dumps(usage).encode() + b"\n\n")
        record.finished_at = time.monotonic()
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    def _tool_call_deltas(self) -> list[dict[str, Any]]:
        """Tool calls as OpenAI streams them: the id and name first, then the arguments' JSON in
        small pieces, each keyed by the call's index."""
        deltas: list[dict[str, Any]] = []
        for index, (call_id, name, arguments) in enumerate(self.tool_calls):
            deltas.append({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]})
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 8]}}]}
                       for i in range(0, len(arguments), 8)]
        return deltas

    async def _mid_stream_fault(self, emit: Callable[[bytes], Awaitable[None]]) -> None:
        fault = self.fault
        if fault is None:
            return
        if fault.kind == "disconnect":
            raise _Cut
        if fault.kind == "malformed":
            await emit(b'data: {"id": "' + self.id.encode() + b'", "choices": [{"delta": {"content": "tru\n\n')
            await self.server._pause(None)  # then stall: the client must give up on its own
            raise _Cut
        if fault.kind == "error_event":
            message = "The server had an error while processing your request."
            if self.server.leak_key_in_errors:
                message += f" (key {self.server.api_key})"
            await emit(b"data: " + json.dumps(error_body(message, "server_error", None)).encode() + b"\n\n")
            await self.server._pause(None)
            raise _Cut

    async def _whole(self, send: Send) -> None:
        fault, server, record = self.fault, self.server, self.record
        await self._begin(send, b"application/json")
        await server._pause(server.token_interval * len(self.deltas))
        if fault is not None and fault.kind in ("disconnect", "malformed", "error_event"):
            await send({"type": "http.response.body", "body": b'{"id": "' + self.id.encode(), "more_body": True})
            raise _Cut
        data = {"id": self.id, "object": "chat.completion", "created": int(time.time()), "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": self._message(),
                             "logprobs": None, "finish_reason": self.finish_reason}],
                "usage": self._usage()}
        record.first_chunk_at = record.finished_at = time.monotonic()
        await send({"type": "http.response.body", "body": json.dumps(data).encode(), "more_body": False})

    def _message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.deltas) or None}
        if self.tool_calls:
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                                     for call_id, name, args in self.tool_calls]
        return message

    def _usage(self) -> dict[str, int]:
        prompt = sum(len(tokens(str(m.get("content", "")))) for m in self.record.messages)
        return {"prompt_tokens": prompt, "completion_tokens": len(self.deltas),
                "total_tokens": prompt + len(self.deltas)}


class _Cut(Exception):
    """End the response where it stands (uvicorn then closes the connection)."""
