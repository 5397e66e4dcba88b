"""Aura, the speaking side of :mod:`voiceflow.testing.fake_deepgram`: REST on Starlette, and the
``/v1/speak`` websocket (its upgrade is handled with ``/v1/listen``'s).

It runs on the fake server's own thread and event loop; Starlette is imported when this module
is, and this module only when a fake server starts.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voiceflow.g711 import mulaw_encode

if TYPE_CHECKING:
    from voiceflow.testing.fake_deepgram import FakeDeepgram, Fault, SpeakRequest

DEFAULT_RATE = 24_000
"""Aura's linear16 rate when the request names none."""


def tone(text: str, sample_rate: int, seconds_per_char: float, encoding: str = "linear16") -> bytes:
    """A 220 Hz tone, one swell per word, as long as ``text`` would take to say; linear16, or
    G.711 μ-law when the request asks for ``encoding=mulaw``."""
    seconds = max(0.3, len(text) * seconds_per_char)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    words = max(1, len(text.split()))
    envelope = 0.25 + 0.2 * np.abs(np.sin(np.pi * words * t / seconds))
    pcm = (envelope * np.sin(2 * np.pi * 220.0 * t) * 32767).astype("<i2").tobytes()
    return mulaw_encode(pcm) if encoding == "mulaw" else pcm


def chunks(audio: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(audio), max(1, size)):
        yield audio[start:start + size]


def error_body(code: str, message: str) -> dict[str, str]:
    """Deepgram's REST error envelope."""
    return {"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}


# --- REST ------------------------------------------------------------------------------------


def build_app(server: FakeDeepgram) -> Starlette:
    async def speak(request: Request) -> Response:
        query = dict(parse_qsl(request.url.query))
        authorization = request.headers.get("authorization")
        record = server._new_speak("rest", query, authorization)
        fault = server._fault_for("speak")
        record.fault = fault.kind if fault is not None else None
        if not server._authorized(authorization) or (fault is not None and fault.kind == "auth"):
            record.finished_at = time.monotonic()
            return JSONResponse(error_body("INVALID_AUTH", "Invalid credentials." + server._key_note(authorization)),
                                401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            record.finished_at = time.monotonic()
            return JSONResponse(error_body("INVALID_QUERY_PARAMETER", "the body must be {\"text\": \"...\"}"), 400)
        record.texts.append(text)
        if fault is not None and fault.kind in ("status", "error"):
            await server._pause(fault.seconds)
            record.finished_at = time.monotonic()
            status = fault.status if fault.kind == "status" else 500
            code = "TOO_MANY_REQUESTS" if status == 429 else "BAD_REQUEST" if status == 400 else "INTERNAL_SERVER_ERROR"
            return JSONResponse(error_body(code, f"The request failed ({status})" + server._key_note(authorization)),
                                status)
        rate = int(query.get("sample_rate", DEFAULT_RATE))
        audio = tone(text, rate, server.seconds_per_char, query.get("encoding", "linear16"))
        return _AudioBody(server, record, fault, audio)

    return Starlette(routes=[Route("/v1/speak", speak, methods=["POST"])])


class _AudioBody(Response):
    """The streamed audio of one REST request; a raw ASGI response so that faults can drop the
    connection mid-body or never start it, and the moment the client went away is noted."""

    def __init__(self, server: FakeDeepgram, record: SpeakRequest, fault: Fault | None, audio: bytes) -> None:
        super().__init__()
        self.server, self.record, self.fault, self.audio = server, record, fault, audio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        produce = asyncio.ensure_future(self._produce(send))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(watch())
        await asyncio.wait([produce, watcher], return_when=asyncio.FIRST_COMPLETED)
        if watcher.done() and self.record.finished_at is None:
            self.record.disconnected_at = time.monotonic()
        for task in (produce, watcher):
            task.cancel()
        await asyncio.gather(produce, watcher, return_exceptions=True)

    async def _produce(self, send: Send) -> None:
        server, record, fault = self.server, self.record, self.fault
        if fault is not None and fault.kind == "hang":
            await server._pause(None)
            return
        await server._pause(server.ttfb)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"dg-request-id", str(uuid.uuid4()).encode())]})
        for i, chunk in enumerate(chunks(self.audio, server.chunk_bytes)):
            if fault is not None and i == fault.after and fault.kind == "disconnect":
                return  # the body stops short: uvicorn drops the connection
            if fault is not None and i == fault.after and fault.kind == "malformed":
                chunk = chunk[:-1]  # a byte short: the rest of the body is out of step, and ends mid-sample
            if i == 0 and fault is not None and fault.kind == "slow_first_byte":
                await server._pause(fault.seconds)
            elif i:
                await server._pause(server.chunk_interval)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            record.chunks_sent += 1
            record.audio_bytes += len(chunk)
            if record.first_chunk_at is None:
                record.first_chunk_at = time.monotonic()
        record.finished_at = time.monotonic()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- websocket -------------------------------------------------------------------------------


async def handle_speak_socket(server: FakeDeepgram, conn: ServerConnection, record: SpeakRequest,
                              fault: Fault | None) -> None:
    await _SpeakSocket(server, conn, record, fault).run()


class _SpeakSocket:
    """Text accumulates until ``Flush``; each flush is spoken in turn and answered by ``Flushed``;
    ``Clear`` stops the one being spoken, drops the rest and is answered by ``Cleared``."""

    def __init__(self, server: FakeDeepgram, conn: ServerConnection, record: SpeakRequest, fault: Fault | None) -> None:
        self.server, self.conn, self.record, self.fault = server, conn, record, fault
        self.rate = int(record.query.get("sample_rate", DEFAULT_RATE))
        self.jobs: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self.speaking: asyncio.Task[None] | None = None
        self.sequence = 0
        self.chunks = 0
        self.slowed = False
        self.faulted = False

    async def run(self) -> None:
        worker = asyncio.ensure_future(self._work())
        fault = self.fault
        if fault is not None and fault.kind == "disconnect" and fault.seconds:
            asyncio.get_running_loop().call_later(fault.seconds, self.conn.transport.abort)
        try:
            await self._json({"type": "Metadata", "request_id": str(uuid.uuid4()),
                              "model_name": self.record.query.get("model", "aura-2-thalia-en"),
                              "model_version": "2025-01-01.0", "model_uuid": "fake-aura-uuid"})
            await self._read()
        except ConnectionClosed:
            pass
        finally:
            worker.cancel()
            if self.speaking is not None:
                self.speaking.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            if self.record.disconnected_at is None and self.record.finished_at is None:
                self.record.disconnected_at = time.monotonic()

    async def _read(self) -> None:
        record, pending = self.record, []
        async for message in self.conn:
            if isinstance(message, bytes):
                continue
            try:
                data = json.loads(message)
                kind = str(data.get("type"))
            except (ValueError, AttributeError):
                data, kind = {}, "<malformed>"
            record.controls.append(kind)
            record.control_times.append(time.monotonic())
            if kind == "Speak" and isinstance(data.get("text"), str):
                pending.append(data["text"])
                record.texts.append(data["text"])
            elif kind == "Flush":
                self.sequence += 1
                self.jobs.put_nowait((self.sequence, "".join(pending)))
                pending = []
            elif kind == "Clear":
                pending = []
                while not self.jobs.empty():
                    self.jobs.get_nowait()
                if self.speaking is not None:
                    self.speaking.cancel()
                record.cleared += 1
                await self._json({"type": "Cleared", "sequence_id": self.sequence})
            elif kind == "Close":
                record.finished_at = time.monotonic()
                await self.conn.close(1000)
                return

    async def _work(self) -> None:
        while True:
            sequence, text = await self.jobs.get()
            self.speaking = asyncio.ensure_future(self._speak(text))
            try:
                await self.speaking
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the socket is closing, not a Clear
                continue  # cleared
            finally:
                self.speaking = None
            self.record.flushed += 1
            await self._json({"type": "Flushed", "sequence_id": sequence})

    async def _speak(self, text: str) -> None:
        server, record, fault = self.server, self.record, self.fault
        if fault is not None and fault.kind == "stall":
            await server._pause(None)
        await server._pause(server.ttfb)
        audio = tone(text, self.rate, server.seconds_per_char, self.record.query.get("encoding", "linear16"))
        for i, chunk in enumerate(chunks(audio, server.chunk_bytes)):
            if fault is not None and self.chunks == fault.after and not fault.seconds and not self.faulted:
                self.faulted = True  # once per socket
                if fault.kind == "disconnect":
                    self.conn.transport.abort()
                    await server._pause(None)
                elif fault.kind == "malformed":
                    await self.conn.send('{"type": "Flushed", "sequence_')
                elif fault.kind == "error":
                    await self._json({"type": "Warning", "description": "Internal server error"
                                      + server._key_note(record.authorization), "code": "INTERNAL_SERVER_ERROR"})
                    await self.conn.close(1011, "internal error")
                    await server._pause(None)
            if i == 0 and not self.slowed and fault is not None and fault.kind == "slow_first_byte":
                self.slowed = True  # the first clause on the socket only
                await server._pause(fault.seconds)
            elif i:
                await server._pause(server.chunk_interval)
            await self.conn.send(chunk)
            self.chunks += 1
            record.chunks_sent += 1
            record.audio_bytes += len(chunk)
            if record.first_chunk_at is None:
                record.first_chunk_at = time.monotonic()

    async def _json(self, message: dict[str, Any]) -> None:
        if self.fault is not None and self.fault.kind == "stall":
            return
        await self.conn.send(json.dumps(message))
