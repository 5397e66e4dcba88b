"""A fake HTTP service for webhook tools, on 127.0.0.1: answers POSTs as scripted, records them.

For testing an agent's webhook tools (or a plugin's HTTP tools) without the real service::

    async with FakeWebhook({"/orders": WebhookAnswer(json={"status": "shipped"})}) as hook:
        agent = ...  # tools: [{name: check_order, webhook: {url: hook.url("/orders")}, ...}]
        ...
        assert hook.requests[0].body == {"order": "42"}

A path with no answer gets 404. ``delay`` holds the answer back (a slow service); it runs in the
server's own thread, on real time, whatever clock the test uses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voiceflow.testing._loopback_server import LoopbackServer


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """How the fake answers: a JSON body (or plain ``text``), a status, extra headers, a delay."""

    json: Any = None
    text: str | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any
    """The parsed JSON body (``None`` if it was not JSON)."""
    received_at: float


Answers = Mapping[str, WebhookAnswer] | Callable[[WebhookRequest], WebhookAnswer]


class FakeWebhook(LoopbackServer):
    label = "fake webhook"

    def __init__(self, answers: Answers | None = None) -> None:
        super().__init__()
        self.answers: Answers = answers if answers is not None else {}
        self._requests: list[WebhookRequest] = []
        self._lock = threading.Lock()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[WebhookRequest]:
        with self._lock:
            return list(self._requests)

    def _answer_for(self, request: WebhookRequest) -> WebhookAnswer | None:
        if callable(self.answers):
            return self.answers(request)
        return self.answers.get(request.path)

    def _asgi_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, PlainTextResponse, Response
        from starlette.routing import Route

        async def hook(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            record = WebhookRequest(request.url.path, {k.lower(): v for k, v in request.headers.items()}, body,
                                    time.monotonic())
            with self._lock:
                self._requests.append(record)
            answer = self._answer_for(record)
            if answer is None:
                return PlainTextResponse("no such hook", status_code=404)
            if await self._pause(answer.delay):
                return PlainTextResponse("stopping", status_code=503)
            if answer.text is not None:
                return PlainTextResponse(answer.text, status_code=answer.status, headers=dict(answer.headers))
            return JSONResponse(answer.json, status_code=answer.status, headers=dict(answer.headers))

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])
