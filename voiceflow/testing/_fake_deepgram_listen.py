"""The websocket side of :mod:`voiceflow.testing.fake_deepgram`: the upgrade, and ``/v1/listen``.

It runs on the fake server's own thread and event loop, and imports ``websockets`` and numpy,
which is why :mod:`voiceflow.testing.fake_deepgram` imports it only when a server starts.

Recognition is driven by the audio, never by the wall clock: the server cuts what it receives
into 20 ms frames, calls a frame voiced when it is louder than ``speech_threshold_db``, and ends
a phrase after ``endpointing`` ms of unvoiced audio. A test can therefore send a recording as
fast as it likes (a virtual clock does) and still get Deepgram's messages at the audio times a
live call would.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voiceflow.testing._fake_deepgram_speak import handle_speak_socket

if TYPE_CHECKING:
    from voiceflow.testing.fake_deepgram import Endpoint, FakeDeepgram, Fault, ListenSession, SpeakRequest

FRAME_SECONDS = 0.02
WORD_SECONDS = 0.3
"""Voiced time per word an interim shows: the words of a phrase appear as it is spoken."""
SILENCE_WINDOW = 5.0
"""Unvoiced audio after which the server sends an empty final, as Deepgram does during silence."""
MODEL_INFO = {"name": "2-general-nova", "version": "2024-01-01.0", "arch": "nova-3"}
IDLE_REASON = ("Deepgram did not receive audio data or a text message within the timeout window. "
               "See https://dpgr.am/net0001")

_records: dict[int, tuple[ListenSession | SpeakRequest, Fault | None]] = {}
"""Per connection (by id), what the upgrade decided: used by the handler, then dropped."""


async def process_request(server: FakeDeepgram, conn: ServerConnection, request: Request) -> Response | None:
    """The upgrade: route, record, check the key, apply the connection's fault."""
    parts = urlsplit(request.path)
    query = dict(parse_qsl(parts.query))
    authorization = request.headers.get("Authorization")
    if parts.path not in ("/v1/listen", "/v1/speak"):
        return conn.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
    endpoint: Endpoint = "listen" if parts.path == "/v1/listen" else "speak"
    record: ListenSession | SpeakRequest = (
        server._new_listen(query, authorization) if endpoint == "listen"
        else server._new_speak("websocket", query, authorization))
    fault = server._fault_for(endpoint)
    record.fault = fault.kind if fault is not None else None
    if fault is not None and fault.kind == "hang":
        await server._pause(None)  # until the client gives up or the server stops
        return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n")
    if not server._authorized(authorization) or (fault is not None and fault.kind == "auth"):
        body = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials." + server._key_note(authorization),
                "request_id": str(uuid.uuid4())}
        return conn.respond(HTTPStatus.UNAUTHORIZED, json.dumps(body))
    if endpoint == "listen" and query.get("encoding", "linear16") != "linear16":
        return conn.respond(HTTPStatus.BAD_REQUEST, "only encoding=linear16 is supported by the fake\n")
    record.accepted = True
    _records[id(conn)] = (record, fault)
    return None


async def handle_websocket(server: FakeDeepgram, conn: ServerConnection) -> None:
    record, fault = _records.pop(id(conn))
    from voiceflow.testing.fake_deepgram import ListenSession

    if isinstance(record, ListenSession):
        await _Listen(server, conn, record, fault).run()
    else:
        await handle_speak_socket(server, conn, record, fault)


def _seconds(value: str | None, default: float | None) -> float | None:
    """A query parameter in milliseconds (``false`` turns the feature off)."""
    if value is None:
        return default
    if value.lower() == "false":
        return None
    return int(value) / 1000


class _Phrases:
    """Deepgram's recognition, from energy: interims, finals per phrase, finalize, utterance end."""

    def __init__(self, server: FakeDeepgram, query: dict[str, str], emit: Callable[[dict[str, Any]], None]) -> None:
        self.server = server
        self.emit = emit
        self.rate = int(query.get("sample_rate", "16000"))
        self.frame_bytes = round(self.rate * FRAME_SECONDS) * 2 * int(query.get("channels", "1"))
        self.endpointing = _seconds(query.get("endpointing"), 0.01)
        self.utterance_end = _seconds(query.get("utterance_end_ms"), None)
        self.interims = query.get("interim_results") == "true"
        self.vad_events = query.get("vad_events") == "true"
        self.threshold = 32768.0 * 10.0 ** (server.speech_threshold_db / 20.0)
        self.request_id = str(uuid.uuid4())
        self.pending = b""
        self.pos = 0.0  # audio seconds received
        self.window_start = 0.0  # start of the audio no final covers yet
        self.phrase_start: float | None = None  # first voiced frame of the phrase being heard
        self.voiced_end = 0.0
        self.last_interim = 0.0
        self.last_word_end: float | None = None  # for UtteranceEnd

    def audio(self, pcm: bytes) -> None:
        data = self.pending + pcm
        usable = len(data) - len(data) % self.frame_bytes
        self.pending = data[usable:]
        for offset in range(0, usable, self.frame_bytes):
            samples = np.frombuffer(data[offset:offset + self.frame_bytes], dtype="<i2").astype(np.float64)
            self._frame(float(np.sqrt(np.mean(samples * samples))) > self.threshold)

    def _frame(self, voiced: bool) -> None:
        start, self.pos = self.pos, self.pos + FRAME_SECONDS
        if voiced:
            if self.phrase_start is None:
                self.phrase_start, self.last_interim = start, start
                if self.vad_events:
                    self.emit({"type": "SpeechStarted", "channel": [0], "timestamp": round(start, 3)})
            self.voiced_end = self.pos
        if self.phrase_start is not None:
            if self.interims and voiced and self.pos - self.last_interim >= self.server.interim_interval:
                self.last_interim = self.pos
                self.emit(self._results(self._words(self.server._next_utterance(peek=True), partial=True),
                                        is_final=False))
            if self.endpointing is not None and self.pos - self.voiced_end >= self.endpointing:
                self._final(speech_final=True)
        elif self.pos - self.window_start >= SILENCE_WINDOW:
            self._final(speech_final=False)
        if (self.utterance_end is not None and self.last_word_end is not None and self.phrase_start is None
                and self.pos - self.last_word_end >= self.utterance_end):
            self.emit({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)})
            self.last_word_end = None

    def finalize(self, *, from_finalize: bool) -> bool:
        """Finalize or CloseStream: a final for the uncovered audio, if there is any."""
        if self.pos - self.window_start < 1e-9:
            return False  # an empty buffer: Deepgram answers nothing
        self._final(speech_final=not from_finalize and self.phrase_start is not None, from_finalize=from_finalize)
        return True

    def _final(self, *, speech_final: bool, from_finalize: bool = False) -> None:
        words = self._words(self.server._next_utterance()) if self.phrase_start is not None else []
        self.emit(self._results(words, is_final=True, speech_final=speech_final, from_finalize=from_finalize))
        if words:
            self.last_word_end = words[-1]["end"]
        self.window_start, self.phrase_start = self.pos, None

    def _words(self, text: str, partial: bool = False) -> list[dict[str, Any]]:
        spoken = text.split()
        start = self.phrase_start if self.phrase_start is not None else self.window_start
        end = max(self.voiced_end, start + FRAME_SECONDS)
        if partial:
            spoken = spoken[: min(len(spoken), 1 + int((end - start) / WORD_SECONDS))]
        step = (end - start) / max(len(spoken), 1)
        return [{"word": word.strip(".,!?;:").lower(), "start": round(start + i * step, 3),
                 "end": round(start + (i + 1) * step, 3), "confidence": 0.97, "punctuated_word": word}
                for i, word in enumerate(spoken)]

    def _results(self, words: list[dict[str, Any]], *, is_final: bool, speech_final: bool = False,
                 from_finalize: bool = False) -> dict[str, Any]:
        transcript = " ".join(w["punctuated_word"] for w in words)
        return {
            "type": "Results", "channel_index": [0, 1], "duration": round(self.pos - self.window_start, 3),
            "start": round(self.window_start, 3), "is_final": is_final, "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.97 if words else 0.0,
                                          "words": words}]},
            "metadata": {"request_id": self.request_id, "model_info": MODEL_INFO, "model_uuid": "fake-model-uuid"},
        }


class _Listen:
    """One ``/v1/listen`` socket: a reader, a paced sender (faults live there), an idle watchdog."""

    def __init__(self, server: FakeDeepgram, conn: ServerConnection, record: ListenSession, fault: Fault | None) -> None:
        self.server, self.conn, self.record, self.fault = server, conn, record, fault
        self.outbox: asyncio.Queue[tuple[float, dict[str, Any] | None]] = asyncio.Queue()
        self.phrases = _Phrases(server, record.query, self._emit)
        self.last_activity = time.monotonic()
        self.closing = False

    def _emit(self, message: dict[str, Any]) -> None:
        self.outbox.put_nowait((time.monotonic() + self.server.result_latency, message))

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(job()) for job in (self._read, self._send, self._watch_idle)]
        if self.fault is not None and self.fault.kind == "disconnect" and self.fault.seconds > 0:
            tasks.append(asyncio.ensure_future(self._drop_after(self.fault.seconds)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.record.closed_at is None:
                self.record.closed_at = time.monotonic()
                self.record.closed_by = self.record.closed_by or "client"

    async def _read(self) -> None:
        record = self.record
        try:
            async for message in self.conn:
                self.last_activity = time.monotonic()
                if isinstance(message, bytes):
                    if self.closing:
                        record.audio_after_close_stream += len(message)
                        continue
                    record.audio += message
                    self.phrases.audio(message)
                    continue
                try:
                    kind = json.loads(message).get("type")
                except (ValueError, AttributeError):
                    kind = "<malformed>"
                record.controls.append(str(kind))
                record.control_times.append(time.monotonic())
                if kind == "Finalize" and not self.closing:
                    self.phrases.finalize(from_finalize=True)
                elif kind == "CloseStream" and not self.closing:
                    self.closing = True
                    self.phrases.finalize(from_finalize=False)
                    self._emit({"type": "Metadata", "transaction_key": "deprecated",
                                "request_id": self.phrases.request_id, "sha256": "0" * 64,
                                "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                                "duration": round(self.phrases.pos, 3), "channels": 1,
                                "models": ["fake-model-uuid"], "model_info": {"fake-model-uuid": MODEL_INFO}})
                    self.outbox.put_nowait((time.monotonic() + self.server.result_latency, None))
        except ConnectionClosed:
            pass
        # The client closed (or dropped) the socket: give the sender no more to do.

    async def _send(self) -> None:
        fault, record, sent = self.fault, self.record, 0
        stalled = fault is not None and fault.kind == "stall"
        while True:
            due, message = await self.outbox.get()
            if stalled:
                continue
            if sent == 0 and fault is not None and fault.kind == "slow_first_byte":
                await asyncio.sleep(fault.seconds)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if message is None:  # after CloseStream: Metadata went out, now close normally
                record.closed_by = "server"
                record.closed_at = time.monotonic()
                await self.conn.close(1000)
                return
            if fault is not None and sent == fault.after and not fault.seconds:
                if fault.kind == "disconnect":
                    self._abort()
                    return
                if fault.kind == "malformed":
                    await self.conn.send('{"type": "Results", "channel_index": [0, 1], "duration": 0.')
                elif fault.kind == "error":
                    error = {"type": "Error", "variant": "INTERNAL_SERVER_ERROR",
                             "description": "The server had an error processing your request"
                             + self.server._key_note(record.authorization),
                             "message": "Internal server error"}
                    record.sent.append(error)
                    await self.conn.send(json.dumps(error))
                    record.closed_by, record.closed_at = "fault", time.monotonic()
                    await self.conn.close(1011, "internal error")
                    return
            await self.conn.send(json.dumps(message))
            record.sent.append(message)
            sent += 1

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(min(0.05, self.server.idle_timeout / 4))
            if time.monotonic() - self.last_activity > self.server.idle_timeout:
                self.record.closed_by, self.record.closed_at = "idle", time.monotonic()
                await self.conn.close(1011, IDLE_REASON[:120])
                return

    async def _drop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._abort()

    def _abort(self) -> None:
        """A dropped connection: no close frame, the TCP connection just goes."""
        self.record.closed_by, self.record.closed_at = "fault", time.monotonic()
        self.conn.transport.abort()

