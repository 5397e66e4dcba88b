"""A fake Deepgram server on 127.0.0.1, speaking the real wire protocol.

For testing a speech provider through the real ``deepgram-sdk`` (or any websocket / HTTP client)
without a key or a network:

* ``GET /v1/listen?…`` (websocket): streaming recognition. Binary frames are linear16 audio;
  text frames are the control messages ``KeepAlive``, ``Finalize`` and ``CloseStream``. The server
  answers with ``Results`` (interims while a phrase is voiced, a final per phrase after
  ``endpointing`` ms of silence, a ``from_finalize`` final for ``Finalize``, nothing for
  ``Finalize`` on an empty buffer), ``SpeechStarted`` (``vad_events=true``), ``UtteranceEnd``
  (``utterance_end_ms``) and ``Metadata`` (after ``CloseStream``, before it closes). Phrases are
  found from the audio's energy, so the timing is the audio's own, however fast it is sent; their
  text comes from a script (``utterances``, used in turn). A socket that gets neither audio nor a
  text message for ``idle_timeout`` seconds is closed as Deepgram does (1011, NET-0001).
* ``POST /v1/speak?…`` (Aura REST): the body streams linear16 audio for ``{"text": …}``.
* ``GET /v1/speak?…`` (Aura websocket): ``Speak`` / ``Flush`` / ``Clear`` / ``Close`` in; binary
  audio, ``Flushed`` and ``Cleared`` out.

The audio is a tone as long as the text would take to say, at the requested ``sample_rate``.
Every request must carry ``Authorization: Token <api_key>``; a wrong key gets 401 (a refused
websocket upgrade, or Deepgram's JSON error body).

Everything runs on real time in the server's own thread and event loop, so it works the same
under a ``VirtualClock`` and from sync tests::

    async with FakeDeepgram(utterances=["what time is it"]) as server:
        client = deepgram.AsyncDeepgramClient(api_key=server.api_key, environment=server.environment())
        server.fail_next(Fault("disconnect", after=3), endpoint="listen")   # the next socket only
        ...
        assert server.listen_sessions[-1].controls == ["Finalize", "CloseStream"]

Websockets are served by the ``websockets`` library and REST by Starlette on uvicorn (the
``test`` extra), on two ports: :attr:`websocket_url` and :attr:`base_url`. Nothing heavy is
imported until a server starts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from voiceflow.testing._loopback_server import LoopbackServer

if TYPE_CHECKING:
    import uvicorn
    from websockets.asyncio.server import Server

FaultKind = Literal["auth", "hang", "stall", "slow_first_byte", "disconnect", "malformed", "error", "status"]
Endpoint = Literal["listen", "speak"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A way for one connection or request to go wrong.

    - ``auth``: 401, whatever key was sent (a refused upgrade, or Deepgram's error body).
    - ``hang``: accept the TCP connection and never answer the upgrade or the request.
    - ``stall``: (websockets) accept the upgrade, read everything, never send a message.
    - ``slow_first_byte``: the first message (or audio) comes ``seconds`` late.
    - ``disconnect``: drop the connection without a close frame after ``after`` messages (or
      audio chunks) were sent, or ``seconds`` after it opened when ``seconds`` is set.
    - ``malformed``: after ``after`` messages, a text frame whose JSON is cut off (websockets);
      (REST) the chunk after ``after`` chunks is a byte short and the body goes on, so the rest
      of the audio is out of step and the body ends mid-sample.
    - ``error``: after ``after`` messages, Deepgram's ``{"type": "Error", …}`` message, then a
      1011 close (websockets), or a 500 with an error body (REST).
    - ``status``: (REST) HTTP ``status`` with Deepgram's error body.
    """

    kind: FaultKind
    after: int = 0
    seconds: float = 0.0
    status: int = 500


@dataclass(slots=True, eq=False)
class ListenSession:
    """What the server saw of one ``/v1/listen`` websocket, and what it sent (monotonic times)."""

    index: int
    query: dict[str, str]
    authorization: str | None
    opened_at: float
    fault: FaultKind | None = None
    accepted: bool = False
    audio: bytearray = field(default_factory=bytearray)
    controls: list[str] = field(default_factory=list)
    """Control messages received, in order: ``KeepAlive``, ``Finalize``, ``CloseStream``, …"""
    control_times: list[float] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Every JSON message sent, in order."""
    closed_at: float | None = None
    closed_by: str | None = None
    """``client``, ``server`` (after CloseStream), ``idle`` (NET-0001) or ``fault``."""
    audio_after_close_stream: int = 0
    """Bytes of audio received after ``CloseStream`` (a client must not send any)."""

    @property
    def audio_seconds(self) -> float:
        return len(self.audio) / 2 / int(self.query.get("sample_rate", "16000"))

    @property
    def results(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == "Results"]


@dataclass(slots=True, eq=False)
class SpeakRequest:
    """One Aura request (``transport`` ``rest``) or websocket (``websocket``)."""

    index: int
    transport: Literal["rest", "websocket"]
    query: dict[str, str]
    authorization: str | None
    opened_at: float
    fault: FaultKind | None = None
    accepted: bool = False
    texts: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    """Websocket messages received (``Speak``, ``Flush``, ``Clear``, ``Close``), in order."""
    control_times: list[float] = field(default_factory=list)
    audio_bytes: int = 0
    chunks_sent: int = 0
    first_chunk_at: float | None = None
    finished_at: float | None = None
    """REST: when the whole body was sent."""
    disconnected_at: float | None = None
    """When the client went away (closed the socket, or dropped the HTTP stream) early."""
    flushed: int = 0
    cleared: int = 0


class FakeDeepgram(LoopbackServer):
    """A Deepgram server in a background thread; see the module docstring.

    ``utterances`` are the transcripts of the phrases heard, in turn (cycling); ``idle_timeout`` the
    seconds without audio or a text message after which a listen socket is dropped;
    ``result_latency`` a delay before each recognition message; ``ttfb``, ``chunk_bytes`` and
    ``chunk_interval`` shape Aura's audio stream (an odd ``chunk_bytes`` splits samples across
    chunks, as the real service can). ``fault`` applies to every connection, :meth:`fail_next` to
    the next ones of an endpoint (it wins). ``leak_key_in_errors`` makes error messages quote the
    presented key in full, so a test can prove that a provider never passes one on.
    """

    label = "fake Deepgram"

    def __init__(
        self,
        *,
        utterances: Sequence[str] = ("hello this is a scripted transcript",),
        api_key: str = "dg-fake-0123456789abcdef",
        idle_timeout: float = 10.0,
        result_latency: float = 0.0,
        speech_threshold_db: float = -40.0,
        interim_interval: float = 0.3,
        ttfb: float = 0.03,
        chunk_bytes: int = 3200,
        chunk_interval: float = 0.01,
        seconds_per_char: float = 0.06,
        fault: Fault | None = None,
        leak_key_in_errors: bool = True,
    ) -> None:
        super().__init__()
        self.utterances = list(utterances)
        self.api_key = api_key
        self.idle_timeout = idle_timeout
        self.result_latency = result_latency
        self.speech_threshold_db = speech_threshold_db
        self.interim_interval = interim_interval
        self.ttfb = ttfb
        self.chunk_bytes = chunk_bytes
        self.chunk_interval = chunk_interval
        self.seconds_per_char = seconds_per_char
        self.fault = fault
        self.leak_key_in_errors = leak_key_in_errors
        self.listen_sessions: list[ListenSession] = []
        self.speak_requests: list[SpeakRequest] = []
        self._utterance_index = 0
        self._next_faults: dict[str, deque[Fault]] = {"listen": deque(), "speak": deque()}
        self._lock = threading.Lock()
        self._ws_port: int | None = None
        self._http_port: int | None = None
        self._http: uvicorn.Server | None = None
        self._ws: Server | None = None
        self._ready = threading.Event()

    # --- public -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the REST root (Aura ``POST /v1/speak``)."""
        if self._http_port is None:
            raise RuntimeError("the fake Deepgram server is not running")
        return f"http://127.0.0.1:{self._http_port}"

    @property
    def websocket_url(self) -> str:
        """``ws://127.0.0.1:<port>``: the websocket root (``/v1/listen``, ``/v1/speak``)."""
        if self._ws_port is None:
            raise RuntimeError("the fake Deepgram server is not running")
        return f"ws://127.0.0.1:{self._ws_port}"

    def environment(self) -> Any:
        """A ``deepgram.DeepgramClientEnvironment`` pointing every endpoint at this server."""
        from deepgram import DeepgramClientEnvironment

        return DeepgramClientEnvironment(base=self.base_url, production=self.websocket_url,
                                         agent=self.websocket_url, agent_rest=self.base_url)

    def fail_next(self, *faults: Fault, endpoint: Endpoint = "listen") -> None:
        """The next connections (or requests) to ``endpoint`` meet these faults, one each."""
        with self._lock:
            self._next_faults[endpoint].extend(faults)

    def start(self, timeout: float = 10.0) -> None:
        """Start serving (blocks until both ports answer, at most ``timeout`` seconds)."""

        def run() -> None:
            try:
                asyncio.run(self._main())
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._failure = exc
            finally:
                self._ready.set()

        self._ready.clear()
        self._thread = threading.Thread(target=run, name="fake-deepgram", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None or self._ws_port is None:
            self.stop()
            raise RuntimeError(f"the fake Deepgram server did not start: {self._failure!r}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: hung requests are released, open connections closed."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop has just closed
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the fake Deepgram server did not stop")
        self._thread = None

    # --- the server's thread --------------------------------------------------------------

    async def _main(self) -> None:
        import uvicorn
        from websockets.asyncio.server import serve

        from voiceflow.testing._fake_deepgram_listen import handle_websocket, process_request
        from voiceflow.testing._fake_deepgram_speak import build_app

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        ws = await serve(lambda conn: handle_websocket(self, conn), "127.0.0.1", 0,
                         process_request=lambda conn, request: process_request(self, conn, request),
                         open_timeout=None, ping_interval=None, close_timeout=2, compression=None)
        self._ws = ws
        self._ws_port = next(iter(ws.sockets)).getsockname()[1]
        config = uvicorn.Config(build_app(self), host="127.0.0.1", port=0, http="h11", loop="asyncio",
                                lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=1)
        http = self._http = uvicorn.Server(config)
        serving = asyncio.ensure_future(http.serve())
        while not http.started:
            if serving.done():
                serving.result()
                raise RuntimeError("uvicorn stopped while starting")
            await asyncio.sleep(0.002)
        self._http_port = http.servers[0].sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            http.should_exit = True
            ws.close()
            await ws.wait_closed()
            await serving

    def _fault_for(self, endpoint: Endpoint) -> Fault | None:
        with self._lock:
            queue = self._next_faults[endpoint]
            if queue:
                return queue.popleft()
        return self.fault

    def _next_utterance(self, peek: bool = False) -> str:
        """The transcript of the phrase being heard (``peek``) or just finished (consumed)."""
        with self._lock:
            if not self.utterances:
                return ""
            text = self.utterances[self._utterance_index % len(self.utterances)]
            if not peek:
                self._utterance_index += 1
            return text

    def _new_listen(self, query: dict[str, str], authorization: str | None) -> ListenSession:
        with self._lock:
            session = ListenSession(len(self.listen_sessions), query, authorization, time.monotonic())
            self.listen_sessions.append(session)
        return session

    def _new_speak(self, transport: Literal["rest", "websocket"], query: dict[str, str],
                   authorization: str | None) -> SpeakRequest:
        with self._lock:
            request = SpeakRequest(len(self.speak_requests), transport, query, authorization, time.monotonic())
            self.speak_requests.append(request)
        return request

    def _authorized(self, authorization: str | None) -> bool:
        return authorization == f"Token {self.api_key}"

    def _key_note(self, authorization: str | None) -> str:
        """What the error texts quote of the presented key (all of it, when leaking)."""
        presented = (authorization or "").removeprefix("Token ").removeprefix("Bearer ")
        return f" (key {presented})" if self.leak_key_in_errors and presented else ""

