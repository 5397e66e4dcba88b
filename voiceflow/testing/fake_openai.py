"""A fake OpenAI-compatible server on 127.0.0.1, speaking the real wire protocol.

For testing an LLM provider through the real ``openai`` SDK (or any HTTP client) without a key or
a network: ``POST /v1/chat/completions`` streams ``text/event-stream`` chunks exactly as OpenAI
does (``data: {chunk}`` events, a role delta first, a ``finish_reason`` chunk, ``data: [DONE]``),
or answers with one JSON body when ``stream`` is false; ``GET /v1/models`` lists models; every
request must carry ``Authorization: Bearer <api_key>``. Timing is realistic and configurable
(time to first byte, pace between tokens) and runs on real time in the server's own thread, so it
does not care which clock or event loop the test uses.

A reply may call tools, written as the scripted LLM writes them
(``"Let me look. [[call check_order {\"order\": \"42\"}]]"``): when the request offers tools, the
calls are streamed as OpenAI streams them (``delta.tool_calls`` fragments, ``finish_reason``
``tool_calls``); the next reply answers the request carrying their results.

Faults, for the whole server, for requests naming a given model, or for the next requests::

    async with FakeOpenAI(replies=["Paris is the capital of France."]) as server:
        client = openai.AsyncOpenAI(api_key=server.api_key, base_url=server.base_url)
        server.fail_next(Fault("disconnect", after=2))       # the next request only
        ...
        assert server.requests[-1].disconnected_at is not None

It is built on Starlette and uvicorn (the ``test`` extra), imported only when a server starts.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from voiceflow.testing._loopback_server import LoopbackServer

if TYPE_CHECKING:
    from starlette.requests import Request

FaultKind = Literal["auth", "hang", "slow_first_byte", "disconnect", "malformed", "error_event", "status"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A way for a chat request to go wrong.

    - ``auth``: 401 with OpenAI's error body, whatever key was sent.
    - ``hang``: accept the request and never answer (until the client goes away).
    - ``slow_first_byte``: send the headers and the role chunk, then wait ``seconds`` before the
      first word.
    - ``disconnect``: drop the connection after ``after`` words (no final chunk, no ``[DONE]``).
    - ``malformed``: after ``after`` words, an event whose JSON is cut off, then stall.
    - ``error_event``: after ``after`` words, an ``{"error": ...}`` event (as OpenAI sends when
      generation fails mid-stream), then stall.
    - ``status``: HTTP ``status`` (500, 429 with ``retry-after``, 503, ...) with an error body,
      after ``seconds``.
    """

    kind: FaultKind
    after: int = 0
    seconds: float = 0.0
    status: int = 500


@dataclass(slots=True, eq=False)
class ReceivedRequest:
    """What the server saw of one request, and what became of it (monotonic times)."""

    index: int
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any] | None
    received_at: float
    authorized: bool = False
    fault: FaultKind | None = None
    chunks_sent: int = 0
    first_chunk_at: float | None = None
    finished_at: float | None = None
    disconnected_at: float | None = None
    """When the client went away before the response was complete (cancel, timeout)."""

    @property
    def model(self) -> str | None:
        value = (self.body or {}).get("model")
        return value if isinstance(value, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        value = (self.body or {}).get("messages")
        return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))

    @property
    def params(self) -> dict[str, Any]:
        """Everything in the body but the model and the messages (temperature, max_tokens, ...)."""
        return {k: v for k, v in (self.body or {}).items() if k not in ("model", "messages")}


Replies = Sequence[str] | Callable[[ReceivedRequest], str]


class FakeOpenAI(LoopbackServer):
    """An OpenAI-compatible HTTP server in a background thread; see the module docstring.

    ``replies`` are used in turn (cycling), or computed from each request. ``ttfb`` is the wait
    before the response starts; ``token_interval`` the pace between words. ``fault`` applies to
    every chat request, ``faults_by_model`` to requests naming that model, :meth:`fail_next` to
    the next requests in order (it wins over the others). ``leak_key_in_errors`` makes error
    messages quote the presented key in full, as a careless gateway might (OpenAI masks part of
    it), so a test can prove that a provider never passes one on.
    """

    label = "fake OpenAI"

    def __init__(
        self,
        *,
        replies: Replies = ("Hello! This is a scripted reply from the fake server.",),
        api_key: str = "sk-fake-0123456789abcdefghij",
        ttfb: float = 0.05,
        token_interval: float = 0.01,
        fault: Fault | None = None,
        faults_by_model: Mapping[str, Fault] | None = None,
        models: Iterable[str] = ("gpt-4o-mini",),
        leak_key_in_errors: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.ttfb = ttfb
        self.token_interval = token_interval
        self.fault = fault
        self.faults_by_model = dict(faults_by_model or {})
        self.models = list(models)
        self.leak_key_in_errors = leak_key_in_errors
        self.requests: list[ReceivedRequest] = []
        self._replies = replies
        self._reply_index = itertools.count()
        self._next_faults: deque[Fault] = deque()
        self._lock = threading.Lock()

    # --- public -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what a client's ``base_url`` should be."""
        if self._port is None:
            raise RuntimeError("the fake server is not running")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def chat_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def fail_next(self, *faults: Fault) -> None:
        """The next chat requests meet these faults, one each, in order."""
        with self._lock:
            self._next_faults.extend(faults)

    def _asgi_app(self) -> Any:
        from voiceflow.testing._fake_openai_app import build_app

        return build_app(self)

    # --- used by the app, on the server's thread -------------------------------------------

    def _record(self, request: Request, body: dict[str, Any] | None) -> ReceivedRequest:
        with self._lock:
            record = ReceivedRequest(
                index=len(self.requests), method=request.method, path=request.url.path,
                authorization=request.headers.get("authorization"), body=body, received_at=time.monotonic(),
            )
            self.requests.append(record)
        return record

    def _fault_for(self, record: ReceivedRequest) -> Fault | None:
        with self._lock:
            if self._next_faults:
                return self._next_faults.popleft()
        return self.faults_by_model.get(record.model or "", self.fault)

    def _reply_for(self, record: ReceivedRequest) -> str:
        if callable(self._replies):
            return self._replies(record)
        replies = list(self._replies)
        return replies[next(self._reply_index) % len(replies)] if replies else ""

