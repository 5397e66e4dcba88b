"""The ASGI side of :mod:`voiceflow.testing.fake_elevenlabs`: ElevenLabs' wire format.

It runs on the fake server's own thread and event loop. The websocket is a raw ASGI handler (it
must do what a well-behaved one never does: drop the connection without a close frame); the HTTP
endpoint is a Starlette route. Starlette is imported when this module is, and this module only
when a fake server starts, so ``voiceflow.testing`` stays importable without the ``test`` extra.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from voiceflow.tasks import create_task_group
from voiceflow.testing._fake_elevenlabs_voice import Speech

if TYPE_CHECKING:
    from voiceflow.testing.fake_elevenlabs import FakeElevenLabs, Fault, ReceivedRequest

_STREAM_INPUT = re.compile(r"^/v1/text-to-speech/([^/]+)/stream-input$")
_PCM = re.compile(r"^(?:pcm_(8000|16000|22050|24000|44100|48000)|ulaw_(8000))$")
DEFAULT_SCHEDULE = (120, 160, 250, 290)
INACTIVITY_MESSAGE = (
    "Have not received a new text input within the timeout of {seconds} seconds. Streaming input "
    "terminated. Please make sure to either feed the input in the timely manner, or to send the end "
    'of input text (empty string "") when done.'
)


def refusal(server: FakeElevenLabs, reason: str, presented: str | None, voice_id: str,
            status: int = 500) -> tuple[int, str, str, int]:
    """(HTTP status, ElevenLabs' ``detail.status``, message, websocket close code) for a refusal."""
    quoted = server._quoted(presented)
    if reason == "auth":
        return 401, "invalid_api_key", "Invalid API key" + quoted, 1008
    if reason == "quota":
        return 401, "quota_exceeded", ("This request exceeds your quota of 10000. You have 12 credits remaining, "
                                       "while 85 credits are required for this request." + quoted), 1008
    if reason == "voice" or status == 404:
        return 404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found." + quoted, 1008
    if status == 429:
        return 429, "too_many_concurrent_requests", ("Too many concurrent requests for your plan; please "
                                                     "try again later." + quoted), 1008
    if status >= 500:
        return status, "internal_error", ("We are sorry, something went wrong. You are not charged for this "
                                          "request." + quoted), 1011
    return status, "invalid_request", "The request was refused." + quoted, 1008


def error_response(server: FakeElevenLabs, reason: str, record: ReceivedRequest, status: int = 500) -> Response:
    record.finished_at = time.monotonic()
    code, kind, message, _ = refusal(server, reason, record.api_key, record.voice_id, status)
    return JSONResponse({"detail": {"status": kind, "message": message}}, code)


def build_app(server: FakeElevenLabs) -> ASGIApp:
    async def stream(request: Request) -> Response:
        voice_id = request.path_params["voice_id"]
        record = server._record("http", request.url.path, dict(request.query_params),
                                request.headers.get("xi-api-key"), voice_id)
        try:
            body = await request.json()
        except ValueError:
            body = None
        record.body = body if isinstance(body, dict) else None
        record.authorized = record.api_key == server.api_key
        if not record.authorized:
            return error_response(server, "auth", record)
        if not server._knows_voice(voice_id):
            return error_response(server, "voice", record)
        rate = _pcm_rate(request.query_params.get("output_format", "mp3_44100"))
        text = (record.body or {}).get("text")
        if rate is None or not isinstance(text, str) or not text.strip():
            record.finished_at = time.monotonic()
            detail = {"status": "invalid_request", "message": "'text' is required and the fake speaks only "
                      "pcm_* output formats"}
            return JSONResponse({"detail": detail}, 400 if rate is None else 422)
        record.text = text
        record.first_text_at = time.monotonic()
        fault = server._fault_for(record)
        if fault is not None and fault.kind in ("auth", "quota", "status"):
            return error_response(server, fault.kind, record, fault.status)
        record.segments.append(text)
        mulaw = _is_mulaw(request.query_params.get("output_format"))
        return _AudioBody(server, record, fault, Speech(text, rate=rate, ms_per_char=server.ms_per_char, mulaw=mulaw))

    http = Starlette(routes=[Route("/v1/text-to-speech/{voice_id}/stream", stream, methods=["POST"])])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await _StreamInput(server, scope, receive, send).run()
        else:
            await http(scope, receive, send)

    return app


def _pcm_rate(output_format: str | None) -> int | None:
    """The rate of a raw output format the fake speaks (``pcm_*``, ``ulaw_8000``), else None."""
    match = _PCM.match(output_format or "")
    return int(match.group(1) or match.group(2)) if match else None


def _is_mulaw(output_format: str | None) -> bool:
    return (output_format or "").startswith("ulaw_")


class _Cut(Exception):
    """End the response or socket where it stands: the connection drops without a goodbye."""


class _AudioBody(Response):
    """The streamed PCM body of one HTTP synthesis, with its faults."""

    def __init__(self, server: FakeElevenLabs, record: ReceivedRequest, fault: Fault | None, speech: Speech) -> None:
        super().__init__()
        self.server, self.record, self.fault, self.speech = server, record, fault, speech

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                if self.record.finished_at is None:
                    self.record.disconnected_at = time.monotonic()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                await self._produce(send)
            except _Cut:
                pass  # return without completing the response: uvicorn drops the connection
            finally:
                tg.cancel_scope.cancel()

    async def _produce(self, send: Send) -> None:
        server, record, fault = self.server, self.record, self.fault
        if fault is not None and fault.kind == "hang":
            await server._pause(None)
            raise _Cut
        slow = fault.seconds if fault is not None and fault.kind == "slow_first_byte" else 0.0
        if await server._pause(server.ttfb + slow):
            raise _Cut
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"audio/pcm"), (b"request-id", f"fake-{record.index}".encode())]})
        pieces = self.speech.pieces(server.chunk_ms, sync_alignment=False)
        cut_at = min(fault.after, len(pieces) - 1) if fault is not None else -1
        for i, piece in enumerate(pieces):
            pcm = piece.pcm
            if fault is not None and i == cut_at:
                if fault.kind == "disconnect":
                    raise _Cut
                if fault.kind == "malformed":
                    pcm = pcm[:-1]
            await send({"type": "http.response.body", "body": pcm, "more_body": True})
            record.audio_messages += 1
            record.audio_bytes += len(pcm)
            record.first_audio_at = record.first_audio_at or time.monotonic()
            if await server._pause(server.chunk_interval):
                raise _Cut
        record.finished_at = time.monotonic()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _StreamInput:
    """One stream-input websocket: a reader buffering text by the chunk length schedule, and a
    speaker generating each part in turn, in one task group that ends with the socket."""

    def __init__(self, server: FakeElevenLabs, scope: Scope, receive: Receive, send: Send) -> None:
        self.server, self.scope, self.receive, self._send = server, scope, receive, send
        self.parts_in, self.parts_out = anyio.create_memory_object_stream[str](64)
        self.fault: Fault | None = None
        self.closed = False
        self.dropped = False

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.parts_in.close()
            self.parts_out.close()

    async def _run(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return
        match = _STREAM_INPUT.match(self.scope["path"])
        if match is None:
            await self._send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope["headers"]}
        query = dict(parse_qsl(self.scope["query_string"].decode("latin-1")))
        record = self.record = self.server._record("websocket", self.scope["path"], query,
                                                   headers.get("xi-api-key"), match.group(1))
        if await self.server._pause(self.server.handshake_delay):
            return
        try:
            await self._send({"type": "websocket.accept"})
        except OSError:  # the client gave up during the handshake
            record.disconnected_at = time.monotonic()
            return
        record.accepted_at = time.monotonic()
        record.authorized = record.api_key == self.server.api_key
        self.rate = _pcm_rate(query.get("output_format", "mp3_44100"))
        self.mulaw = _is_mulaw(query.get("output_format"))
        timeout = query.get("inactivity_timeout", "20")
        self.inactivity = float(timeout) if timeout.isdigit() and 5 <= int(timeout) <= 180 else 0.0
        if self.inactivity and self.server.inactivity_timeout is not None:
            self.inactivity = self.server.inactivity_timeout
        self.sync = query.get("sync_alignment", "false").lower() == "true"
        try:
            if not record.authorized:
                return await self._refuse("auth")
            if not self.server._knows_voice(record.voice_id):
                return await self._refuse("voice")
            if self.rate is None or not self.inactivity:
                return await self._close(1008, "the fake speaks only pcm_* output formats, with an "
                                               "inactivity_timeout of 5-180 seconds")
            async with create_task_group() as tg:
                self.tg = tg
                tg.start_soon(self._read)
                tg.start_soon(self._speak)
        except _Cut:
            return  # no close frame: uvicorn closes the transport (the client sees 1006)

    # --- sending ---------------------------------------------------------------------------

    async def _send_text(self, data: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": data})
        except OSError:  # the client has gone
            self._gone()

    async def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        reason = reason.encode()[:123].decode("utf-8", "ignore")
        self.record.close_code, self.record.close_reason = code, reason
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except OSError:
            pass

    async def _refuse(self, reason: str, status: int = 500) -> None:
        _, _, message, code = refusal(self.server, reason, self.record.api_key, self.record.voice_id, status)
        await self._close(code, message)

    def _gone(self) -> None:
        if self.record.finished_at is None and self.record.disconnected_at is None:
            self.record.disconnected_at = time.monotonic()
        self.tg.cancel_scope.cancel()

    # --- reading ---------------------------------------------------------------------------

    async def _read(self) -> None:
        record, schedule, k = self.record, list(DEFAULT_SCHEDULE), 0
        buffer = ""
        first = True
        while True:
            event: dict[str, Any] | None = None
            with anyio.move_on_after(None if record.ended else self.inactivity):
                event = dict(await self.receive())
            if event is None:
                await self._close(1008, INACTIVITY_MESSAGE.format(seconds=f"{self.inactivity:g}"))
                return self._gone()
            if event["type"] == "websocket.disconnect":
                return self._gone()
            raw = event.get("text")
            message = _parse(raw)
            if raw is not None:
                record.messages.append(raw)
            if message is None:
                await self._close(1008, "Invalid message: expected a JSON object with a 'text' string")
                return self._gone()
            if record.ended:
                continue
            if first:
                first = False
                record.init = message
                config = message.get("generation_config")
                wanted = config.get("chunk_length_schedule") if isinstance(config, dict) else None
                if wanted is not None:
                    if not _valid_schedule(wanted):
                        await self._close(1008, "chunk_length_schedule values must be integers from 50 to 500")
                        return self._gone()
                    schedule = list(wanted)
                buffer += message["text"]
                continue
            text = message["text"]
            if text and self.fault is None and record.fault is None:
                self.fault = self.server._fault_for(record)
                if self.fault is not None and self.fault.kind in ("auth", "quota", "status"):
                    await self._refuse(self.fault.kind, self.fault.status)
                    return self._gone()
            if text:
                record.text += text
                record.first_text_at = record.first_text_at or time.monotonic()
                buffer += text
            if not text or message.get("flush") is True:
                if buffer.strip():
                    await self.parts_in.send(buffer)
                buffer = ""
                if not text:
                    record.ended = True
                    self.parts_in.close()
                continue
            while (cut := _cut(buffer, schedule[min(k, len(schedule) - 1)])) is not None:
                await self.parts_in.send(buffer[:cut])
                buffer, k = buffer[cut:], k + 1

    # --- speaking --------------------------------------------------------------------------

    async def _speak(self) -> None:
        server, record = self.server, self.record
        sent = 0
        async with self.parts_out:
            async for text in self.parts_out:
                fault = self.fault
                if fault is not None and fault.kind == "hang":
                    await server._pause(None)
                    return
                slow = fault.seconds if fault is not None and fault.kind == "slow_first_byte" and not sent else 0.0
                if await server._pause(server.ttfb + slow):
                    return
                record.segments.append(text)
                speech = Speech(text, rate=self.rate or 16000, ms_per_char=server.ms_per_char, mulaw=self.mulaw)
                for piece in speech.pieces(server.chunk_ms, sync_alignment=self.sync):
                    pcm = piece.pcm
                    if fault is not None and sent == fault.after:
                        pcm = await self._fault_at(fault, pcm)
                    payload: dict[str, Any] = {"audio": base64.b64encode(pcm).decode(), "isFinal": None}
                    if server.alignment in ("both", "normalized"):
                        payload["normalizedAlignment"] = piece.normalized_alignment
                    if server.alignment in ("both", "original"):
                        payload["alignment"] = piece.alignment
                    await self._send_text(json.dumps(payload))
                    sent += 1
                    record.audio_messages += 1
                    record.audio_bytes += len(pcm)
                    record.first_audio_at = record.first_audio_at or time.monotonic()
                    if await server._pause(server.chunk_interval):
                        return
        fault = self.fault
        if fault is not None and fault.after >= sent and fault.kind in ("disconnect", "malformed"):
            odd = await self._fault_at(fault, b"")  # the fault was due after the last audio
            await self._send_text(json.dumps({"audio": base64.b64encode(odd).decode(), "isFinal": None}))
        await self._send_text(json.dumps({"audio": None, "isFinal": True, "normalizedAlignment": None,
                                          "alignment": None}))
        record.finished_at = time.monotonic()
        await self._close(1000, "")
        self.tg.cancel_scope.cancel()

    async def _fault_at(self, fault: Fault, pcm: bytes) -> bytes:
        """Apply a mid-stream fault before an audio message; returns the audio to send."""
        if fault.kind == "disconnect":
            raise _Cut
        if fault.kind != "malformed":
            return pcm
        if fault.detail == "odd":
            return pcm[:-1] if pcm else b"\0"
        if fault.detail == "json":
            await self._send_text('{"audio": "AAAA", "isFinal": nul')
        else:
            await self._send_text(json.dumps({"audio": "not base64 at all!", "isFinal": None}))
        await self.server._pause(None)  # then stall: the client must give up on its own
        raise _Cut


def _parse(raw: str | None) -> dict[str, Any] | None:
    try:
        message = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("text"), str) else None


def _valid_schedule(value: object) -> bool:
    return (isinstance(value, list) and 0 < len(value) <= 16
            and all(isinstance(n, int) and not isinstance(n, bool) and 50 <= n <= 500 for n in value))


def _cut(buffer: str, threshold: int) -> int | None:
    """Where the buffered text is cut for generation: at the first space at or after the
    threshold (a part is whole words), or None while the buffer is shorter."""
    if len(buffer) < threshold:
        return None
    space = buffer.find(" ", threshold - 1)
    return None if space < 0 else space + 1
