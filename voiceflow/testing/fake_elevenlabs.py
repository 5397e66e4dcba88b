"""A fake ElevenLabs text-to-speech server on 127.0.0.1, speaking the real wire protocol.

For testing a TTS provider through real clients (the ``elevenlabs`` SDK, the ``websockets``
library) without a key or a network. One port serves both of ElevenLabs' streaming APIs:

* ``ws://…/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=pcm_16000…`` with
  the ``xi-api-key`` header: the first message ``{"text": " ", "voice_settings": …,
  "generation_config": {"chunk_length_schedule": […]}}``, then text; the service buffers text
  until the schedule's next threshold (or ``flush``, or the end of input ``{"text": ""}``), then
  streams each part as JSON text frames ``{"audio": "<base64 PCM>", "isFinal": null,
  "alignment": {…}, "normalizedAlignment": {…}}``, then ``{"isFinal": true}`` and closes (1000).
  A socket that receives no text for ``inactivity_timeout`` seconds (default 20) is closed with
  1008 and ElevenLabs' own message.
* ``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000`` with a JSON body
  (``text``, ``model_id``, ``voice_settings``): the audio as a streamed raw PCM body.

Alignment semantics (chosen to match what clients of the real service assume, see
docs/tts-elevenlabs.md): ``alignment`` lists the characters of the text as sent,
``normalizedAlignment`` those of the text as spoken (digits spelt out, lower case). Times are in
milliseconds from the first sample of the audio the message starts: with ``sync_alignment=true``
in the query, each audio message carries the characters starting in its own audio; without it,
the first message of each generated part carries that whole part's characters. The voice says
every normalised character in exactly ``ms_per_char`` ms (a tone for letters, silence for the
rest), so the alignment always agrees with the audio.

Authentication: a wrong key gets HTTP 401 with ElevenLabs' error body; on the websocket the
upgrade is accepted and the socket closed at once with 1008 (policy violation) "Invalid API key",
which is how clients of the real service see it. ``leak_key_in_errors`` makes every error quote
the presented key in full (worse than the real service), so a test can prove a provider never
passes it on.

Faults (:class:`Fault`) apply to every synthesis (``fault=``) or to the next ones
(:meth:`fail_next`); they are drawn when a synthesis *starts* (its first text, or the POST), not
when a socket connects, so a pre-opened socket meets the fault meant for its clause. Timing runs
on real time in the server's own thread: it does not care which clock the test uses. It is built
on Starlette and uvicorn (the ``test`` extra; uvicorn's websocket side is the ``websockets``
library's protocol), imported only when a server starts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from voiceflow.testing._loopback_server import LoopbackServer

if TYPE_CHECKING:
    pass

FaultKind = Literal["auth", "quota", "status", "hang", "slow_first_byte", "disconnect", "malformed"]
Malformation = Literal["json", "base64", "odd"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A way for one synthesis to go wrong.

    - ``auth``: the key is refused (HTTP 401 ``invalid_api_key``; websocket closed 1008).
    - ``quota``: out of credits (HTTP 401 ``quota_exceeded``, as ElevenLabs answers it;
      websocket closed 1008 with the quota message).
    - ``status``: HTTP ``status`` with ElevenLabs' body (429 ``too_many_concurrent_requests``,
      404 ``voice_not_found``, 5xx ``internal_error``); on the websocket, closed with 1008 and the
      same message (1011 for 5xx).
    - ``hang``: take the text and never answer (until the client goes away).
    - ``slow_first_byte``: the first audio ``seconds`` late.
    - ``disconnect``: the connection dropped without a close frame after ``after`` audio messages
      (HTTP: chunks).
    - ``malformed``: after ``after`` audio messages, a message whose JSON is cut off (``json``)
      or whose audio is not base64 (``base64``), then a stall; or (``odd``) one audio message a
      byte short, after which the stream goes on. Over HTTP every kind is a body a byte short.
    """

    kind: FaultKind
    after: int = 0
    seconds: float = 0.0
    status: int = 500
    detail: Malformation = "json"


@dataclass(slots=True, eq=False)
class ReceivedRequest:
    """One websocket connection or HTTP request, what it asked for, and what became of it
    (``time.monotonic()`` times)."""

    index: int
    transport: Literal["websocket", "http"]
    path: str
    query: dict[str, str]
    api_key: str | None
    voice_id: str
    received_at: float
    accepted_at: float | None = None
    authorized: bool = False
    init: dict[str, Any] | None = None
    """The websocket's first message (voice settings, generation config)."""
    body: dict[str, Any] | None = None
    """The HTTP request's JSON body."""
    messages: list[str] = field(default_factory=list)
    """Every websocket text frame received, as sent."""
    text: str = ""
    """The text to speak (websocket: every message's after the first, joined)."""
    ended: bool = False
    """The websocket's end of input (``{"text": ""}``) arrived."""
    fault: FaultKind | None = None
    segments: list[str] = field(default_factory=list)
    """The parts the text was generated in (websocket: cut by the chunk length schedule)."""
    audio_messages: int = 0
    audio_bytes: int = 0
    first_text_at: float | None = None
    first_audio_at: float | None = None
    finished_at: float | None = None
    """When the whole answer had been sent (``isFinal``, or the body's end)."""
    disconnected_at: float | None = None
    """When the client went away before the answer was complete (barge-in, a deadline)."""
    close_code: int | None = None
    close_reason: str | None = None
    """What the server closed the websocket with, if it did."""

    @property
    def model_id(self) -> str | None:
        value = self.query.get("model_id") if self.transport == "websocket" else (self.body or {}).get("model_id")
        return value if isinstance(value, str) else None

    @property
    def output_format(self) -> str | None:
        return self.query.get("output_format")

    @property
    def voice_settings(self) -> dict[str, Any] | None:
        value = (self.init if self.transport == "websocket" else self.body or {}) or {}
        settings = value.get("voice_settings")
        return settings if isinstance(settings, dict) else None

    @property
    def synthesised(self) -> bool:
        """Whether this request asked for speech (a spare socket that was never used did not)."""
        return bool(self.text.strip())


class FakeElevenLabs(LoopbackServer):
    """ElevenLabs' streaming TTS APIs in a background thread; see the module docstring.

    ``handshake_delay`` holds each websocket upgrade (what TLS and authentication cost a real
    first connection); ``ttfb`` is the wait from a generation's start to its first audio;
    ``chunk_ms`` the audio per message (or HTTP chunk) and ``chunk_interval`` the pace between
    them (faster than real time, as the real service is). ``voices`` limits the voice ids that
    exist (``None``: all do). ``alignment`` picks the alignment fields sent.
    ``inactivity_timeout`` overrides the one a socket asks for (the real service accepts 5–180 s;
    a test may want less).
    """

    label = "fake ElevenLabs"

    def __init__(
        self,
        *,
        api_key: str = "xi-fake-0123456789abcdefghijklmnop",
        voices: Iterable[str] | None = None,
        handshake_delay: float = 0.15,
        ttfb: float = 0.05,
        chunk_ms: int = 100,
        chunk_interval: float = 0.01,
        ms_per_char: int = 60,
        alignment: Literal["both", "original", "normalized", "none"] = "both",
        inactivity_timeout: float | None = None,
        fault: Fault | None = None,
        leak_key_in_errors: bool = True,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.voices = None if voices is None else set(voices)
        self.handshake_delay = handshake_delay
        self.ttfb = ttfb
        self.chunk_ms = chunk_ms
        self.chunk_interval = chunk_interval
        self.ms_per_char = ms_per_char
        self.alignment = alignment
        self.inactivity_timeout = inactivity_timeout
        self.fault = fault
        self.leak_key_in_errors = leak_key_in_errors
        self.requests: list[ReceivedRequest] = []
        self._next_faults: deque[Fault] = deque()
        self._lock = threading.Lock()

    # --- public -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the root of the API, for the SDK and the provider."""
        if self._port is None:
            raise RuntimeError("the fake server is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def websocket_url(self) -> str:
        return "ws" + self.base_url[4:]

    @property
    def sockets(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.transport == "websocket"]

    @property
    def syntheses(self) -> list[ReceivedRequest]:
        """Requests that asked for speech, in the order their text arrived."""
        found = [r for r in self.requests if r.synthesised]
        return sorted(found, key=lambda r: r.first_text_at or r.received_at)

    def fail_next(self, *faults: Fault) -> None:
        """The next syntheses meet these faults, one each, in order."""
        with self._lock:
            self._next_faults.extend(faults)

    def _asgi_app(self) -> Any:
        from voiceflow.testing._fake_elevenlabs_app import build_app

        return build_app(self)

    def _uvicorn_options(self) -> dict[str, Any]:
        return {"ws": "websockets-sansio", "ws_max_size": 1 << 20}

    # --- used by the app, on the server's thread -------------------------------------------

    def _record(self, transport: Literal["websocket", "http"], path: str, query: dict[str, str],
                api_key: str | None, voice_id: str) -> ReceivedRequest:
        with self._lock:
            record = ReceivedRequest(index=len(self.requests), transport=transport, path=path, query=query,
                                     api_key=api_key, voice_id=voice_id, received_at=time.monotonic())
            self.requests.append(record)
        return record

    def _fault_for(self, record: ReceivedRequest) -> Fault | None:
        with self._lock:
            fault = self._next_faults.popleft() if self._next_faults else self.fault
        record.fault = fault.kind if fault is not None else None
        return fault

    def _knows_voice(self, voice_id: str) -> bool:
        return self.voices is None or voice_id in self.voices

    def _quoted(self, presented: str | None) -> str:
        return f" (key {presented})" if self.leak_key_in_errors and presented else ""

