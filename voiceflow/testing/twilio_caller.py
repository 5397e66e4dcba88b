"""A phone calling through Twilio, for tests: it does what Twilio does on a real call.

There is no official Twilio simulator, so this plays both of Twilio's parts faithfully:

* **the webhook request**: ``POST`` to the number's voice URL with the form fields Twilio sends
  (``CallSid``, ``AccountSid``, ``From``, ``To``, ``CallStatus``…) and, given the auth token,
  ``X-Twilio-Signature`` computed as Twilio documents it (over ``sign_url`` if Twilio would have
  called a public URL that a proxy forwards here). The TwiML answer is parsed: ``<Reject>`` raises
  :class:`CallRejected`, ``<Connect><Stream>`` gives the stream URL and its parameters.
* **the media stream**: ``connected``, ``start`` (with the ``<Parameter>`` values as
  ``customParameters``), then a ``media`` message of 160 bytes of μ-law every 20 ms at real time,
  as long as the call lasts: the caller's voice when :meth:`TwilioCaller.say` gives one (a
  recording at 16 kHz, converted as a phone line would), line silence otherwise. Numbers are
  strings, as Twilio sends them. ``dtmf`` for :meth:`~TwilioCaller.press`, ``stop`` for
  :meth:`~TwilioCaller.hang_up`.
* **the phone's speaker**: the agent's ``media`` is played at real time into :class:`PhoneReport`;
  each ``mark`` is echoed once the audio sent before it has played; ``clear`` drops what has not
  played and echoes the pending marks at once, as Twilio does. Given the
  :class:`~voiceflow.testing.fake_twilio.FakeTwilio`, a call completed through its REST API gets
  ``stop`` and the socket closed, as Twilio's media servers do.

::

    async with TwilioCaller(server.base_url + "/agents/phone/twilio/voice", twilio=fake) as phone:
        await phone.wait_for(agent_went_quiet)
        await phone.say(recording)
        await phone.wait_closed()
    phone.report.heard()   # the agent as the caller heard it, 8 kHz PCM16
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voiceflow.audio import resample
from voiceflow.g711 import MULAW_FRAME_BYTES, MULAW_RATE, MULAW_SILENCE, mulaw_decode, mulaw_encode
from voiceflow.tasks import create_task_group
from voiceflow.testing.fake_twilio import ACCOUNT_SID, FakeTwilio

FRAME_SECONDS = 0.02


class CallRejected(Exception):
    """The webhook did not open a media stream (``<Reject>``, an HTTP error, no ``<Stream>``)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """``X-Twilio-Signature`` as Twilio computes it (twilio.com/docs/usage/security)."""
    signed = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return base64.b64encode(hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Played:
    """Agent audio as it reached the speaker: ``start`` in seconds since the stream opened."""

    start: float
    pcm: bytes
    """8 kHz PCM16, decoded from the μ-law that arrived."""

    @property
    def end(self) -> float:
        return self.start + len(self.pcm) / (2 * MULAW_RATE)


@dataclass
class PhoneReport:
    """What the phone saw. Times are seconds since the stream opened (:attr:`opened_at`, on the
    event loop's clock: ``time.monotonic()`` on asyncio)."""

    twiml: str = ""
    stream_url: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    opened_at: float = 0.0
    played: list[Played] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    """Every agent ``media`` payload as it arrived (μ-law)."""
    echoed: list[tuple[float, str, bool]] = field(default_factory=list)
    """Marks echoed: (time, name, whether a ``clear`` dropped its audio)."""
    clears: list[float] = field(default_factory=list)
    marks_received: int = 0
    close_code: int | None = None
    stopped: bool = False
    """The phone (Twilio) sent ``stop``."""

    def heard(self, since: float = 0.0, until: float | None = None) -> bytes:
        """Agent audio that has played between ``since`` and ``until`` (default: all so far)."""
        parts = []
        for segment in self.played:
            first = max(0, round((since - segment.start) * MULAW_RATE))
            last = len(segment.pcm) // 2
            if until is not None:
                last = min(last, round((until - segment.start) * MULAW_RATE))
            if last > first:
                parts.append(segment.pcm[2 * first : 2 * last])
        return b"".join(parts)

    def seconds_heard(self, since: float = 0.0, until: float | None = None) -> float:
        return len(self.heard(since, until)) / (2 * MULAW_RATE)

    def last_audio_end(self) -> float | None:
        return self.played[-1].end if self.played else None


Condition = Callable[["TwilioCaller"], bool]


def agent_went_quiet(quiet: float = 0.6) -> Condition:
    """True once the agent has been heard and then nothing has played for ``quiet`` seconds."""

    def check(phone: TwilioCaller) -> bool:
        end = phone.report.last_audio_end()
        return end is not None and phone.now() - end >= quiet

    return check


def agent_audible_for(seconds: float, since: float) -> Condition:
    """True once at least ``seconds`` of agent audio have played after ``since``."""
    return lambda phone: phone.report.seconds_heard(since, phone.now()) >= seconds


class TwilioCaller:
    """One phone call; use it as an async context manager (hangs up on leaving, if still on)."""

    def __init__(
        self,
        webhook_url: str,
        *,
        auth_token: str | None = None,
        sign_url: str | None = None,
        twilio: FakeTwilio | None = None,
        caller: str = "+15005550006",
        called: str = "+15005550001",
        account_sid: str = ACCOUNT_SID,
        call_sid: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.auth_token = auth_token if auth_token is not None else (twilio.auth_token if twilio else None)
        self.sign_url = sign_url or webhook_url
        self.twilio = twilio
        self.account_sid = account_sid
        self.call_sid = call_sid or new_sid("CA")
        self.stream_sid = new_sid("MZ")
        self.form = {
            "AccountSid": account_sid, "ApiVersion": "2010-04-01", "CallSid": self.call_sid,
            "CallStatus": "ringing", "Called": called, "Caller": caller, "Direction": "inbound",
            "From": caller, "To": called,
        }
        self.headers = headers or {}
        self.report = PhoneReport()
        self._mic: deque[bytes] = deque()
        self._mic_empty = anyio.Event()
        self._mic_empty.set()
        self._pending_marks: deque[tuple[float, str]] = deque()
        self._play_end = 0.0
        self._sequence = 0
        self._chunk = 0
        self._ws: ClientConnection | None = None
        self._closed = anyio.Event()
        self._stack = AsyncExitStack()

    # --- the call -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.dial()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if not self._closed.is_set():
                await self.hang_up()
        finally:
            await self._stack.aclose()

    async def answer(self) -> httpx.Response:
        """Only the webhook request (no stream): Twilio asking what to do with the call."""
        headers = {**self.headers}
        if self.auth_token is not None:
            headers["X-Twilio-Signature"] = twilio_signature(self.auth_token, self.sign_url, self.form)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(self.webhook_url, data=self.form, headers=headers)

    async def dial(self) -> None:
        response = await self.answer()
        self.report.twiml = response.text
        if response.status_code != 200:
            raise CallRejected(response.status_code, response.text)
        self.report.stream_url, self.report.parameters = _stream_of(response.text)
        if self.twilio is not None:
            self.twilio.start_call(self.call_sid)
        self._ws = await self._stack.enter_async_context(connect(self.report.stream_url, max_size=None))
        self.report.opened_at = anyio.current_time()
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send({"event": "start", "sequenceNumber": self._next(), "streamSid": self.stream_sid, "start": {
            "accountSid": self.account_sid, "streamSid": self.stream_sid, "callSid": self.call_sid,
            "tracks": ["inbound"], "customParameters": self.report.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": MULAW_RATE, "channels": 1},
        }})
        tg = await self._stack.enter_async_context(create_task_group())
        self._stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(self._microphone)
        tg.start_soon(self._receive)
        tg.start_soon(self._echo_marks)

    async def say(self, pcm: bytes, rate: int = 16_000) -> None:
        """Speak ``pcm`` (PCM16 mono at ``rate``) into the call at real time; returns once sent."""
        codes = mulaw_encode(resample(pcm, rate, MULAW_RATE))
        if len(codes) % MULAW_FRAME_BYTES:
            codes += bytes([MULAW_SILENCE]) * (MULAW_FRAME_BYTES - len(codes) % MULAW_FRAME_BYTES)
        self._mic.extend(codes[i : i + MULAW_FRAME_BYTES] for i in range(0, len(codes), MULAW_FRAME_BYTES))
        self._mic_empty = anyio.Event()
        await self._mic_empty.wait()

    async def press(self, digit: str) -> None:
        await self._send({"event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": self._next(),
                          "dtmf": {"track": "inbound_track", "digit": digit}})

    async def send_raw(self, text: str) -> None:
        """Send anything (to misbehave)."""
        if self._ws is not None:
            await self._ws.send(text)

    async def hang_up(self) -> None:
        """The caller hangs up: Twilio sends ``stop`` and closes the stream."""
        await self._stop()

    async def wait_for(self, condition: Condition, timeout: float = 30.0) -> None:
        """Until ``condition(self)`` holds (the line carries silence meanwhile)."""
        with anyio.fail_after(timeout):
            while not condition(self):
                if self._closed.is_set():
                    raise ConnectionError("the call ended while waiting")
                await anyio.sleep(FRAME_SECONDS / 2)

    async def wait_closed(self, timeout: float = 30.0) -> None:
        with anyio.fail_after(timeout):
            await self._closed.wait()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def now(self) -> float:
        """Seconds since the stream opened."""
        return anyio.current_time() - self.report.opened_at

    # --- Twilio's side of the stream --------------------------------------------------------

    async def _microphone(self) -> None:
        """A ``media`` message every 20 ms, on time, for as long as the call lasts."""
        tick = anyio.current_time()
        while not self._closed.is_set():
            if self.twilio is not None and self.twilio.status(self.call_sid) == "completed":
                await self._stop()  # completed through the REST API: Twilio ends the stream
                return
            payload = self._mic.popleft() if self._mic else bytes([MULAW_SILENCE]) * MULAW_FRAME_BYTES
            await anyio.sleep(max(0.0, tick + FRAME_SECONDS - anyio.current_time()))  # captured, then sent
            await self._send({"event": "media", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                              "media": {"track": "inbound", "chunk": str(self._chunk + 1),
                                        "timestamp": str(round(self._chunk * FRAME_SECONDS * 1000)),
                                        "payload": base64.b64encode(payload).decode()}})
            self._chunk += 1
            tick += FRAME_SECONDS
            if not self._mic:
                self._mic_empty.set()

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                message = json.loads(data)
                now = self.now()
                match message.get("event"):
                    case "media":
                        payload = base64.b64decode(message["media"]["payload"])
                        self.report.payloads.append(payload)
                        start = max(now, self._play_end)
                        self._play_end = start + len(payload) / MULAW_RATE
                        self.report.played.append(Played(start, mulaw_decode(payload)))
                    case "mark":
                        self.report.marks_received += 1
                        self._pending_marks.append((max(now, self._play_end), message["mark"]["name"]))
                    case "clear":
                        await self._clear(now)
                    case other:
                        raise AssertionError(f"Twilio would not understand event {other!r}")
        except ConnectionClosed:
            pass
        finally:
            self.report.close_code = self._ws.close_code
            self._closed.set()
            self._mic_empty.set()

    async def _clear(self, now: float) -> None:
        """Stop playing now; echo the marks of the dropped audio at once, as Twilio does."""
        self.report.clears.append(now)
        kept = []
        for segment in self.report.played:
            if segment.start < now:
                played = int((now - segment.start) * MULAW_RATE) * 2
                kept.append(segment if played >= len(segment.pcm) else Played(segment.start, segment.pcm[:played]))
        self.report.played = kept
        self._play_end = now
        while self._pending_marks:
            due, name = self._pending_marks.popleft()
            await self._echo(name, cleared=due > now)

    async def _echo_marks(self) -> None:
        while not self._closed.is_set():
            if not self._pending_marks:
                await anyio.sleep(FRAME_SECONDS / 4)
                continue
            due, name = self._pending_marks[0]
            await anyio.sleep(max(0.0, due - self.now()))
            if self._pending_marks and self._pending_marks[0] == (due, name):
                self._pending_marks.popleft()
                await self._echo(name, cleared=False)

    async def _echo(self, name: str, *, cleared: bool) -> None:
        self.report.echoed.append((self.now(), name, cleared))
        await self._send({"event": "mark", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                          "mark": {"name": name}})

    async def _stop(self) -> None:
        if self._closed.is_set() or self._ws is None:
            return
        self.report.stopped = True
        await self._send({"event": "stop", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                          "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})
        await self._ws.close()
        self._closed.set()

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is None or self._closed.is_set():
            return
        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed:
            self._closed.set()

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)


def _stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    """The ``<Connect><Stream>`` of a TwiML answer: its URL and parameters."""
    root = ElementTree.fromstring(twiml)
    if root.tag != "Response":
        raise CallRejected(200, twiml)
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise CallRejected(200, twiml)
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return str(stream.get("url")), parameters
