"""Speaking one clause over ElevenLabs' stream-input websocket, with the ``websockets`` library.

The SDK has no async client for stream-input (its ``convert_realtime`` is synchronous, forces
``wss://`` and cannot flush), so the protocol is spoken directly; it is small:

1. open ``/v1/text-to-speech/{voice}/stream-input?model_id=…&output_format=pcm_16000&…`` with the
   ``xi-api-key`` header and send ``{"text": " ", "voice_settings": …, "generation_config":
   {"chunk_length_schedule": …}}`` (done ahead of time for a spare socket, see :mod:`.sockets`);
2. send the clause, ending in a space, then ``{"text": ""}``: the end of input, which also
   flushes whatever the schedule still holds;
3. read JSON frames ``{"audio": base64 PCM, "alignment": …}`` until ``{"isFinal": true}``.

Each audio frame becomes one :class:`TTSAudio` at once (with the alignment as
:class:`TextMark` entries), so the caller hears the first part while the rest is generated. A
frame's PCM may end mid-sample: the odd byte is carried to the next. Leaving early (barge-in, a
deadline) closes the socket: a single-context socket cannot be told to stop.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlencode

from voiceflow.frames import TextMark, TTSAudio
from voiceflow.providers import ProviderError
from voiceflow_elevenlabs import errors
from voiceflow_elevenlabs.alignment import ClauseAligner
from voiceflow_elevenlabs.config import ElevenLabsConfig
from voiceflow_elevenlabs.formats import PCM_16000, OutputFormat, WholeSamples
from voiceflow_elevenlabs.sockets import CLOSE_TIMEOUT, SparePool

MAX_MESSAGE = 16 * 1024 * 1024
"""Largest frame accepted: generous (a long part's audio in one frame is ~1 MB of base64)."""


class StreamInput:
    """The stream-input side of one provider: its URL, its key and its sockets."""

    def __init__(self, config: ElevenLabsConfig, key: str, audio: OutputFormat = PCM_16000) -> None:
        self.config = config
        self._key = key
        self.audio = audio
        query = urlencode({
            "model_id": config.model_id,
            "output_format": audio.name,
            "inactivity_timeout": config.inactivity_timeout,
            "sync_alignment": "true",
        })
        self.url = f"{config.websocket_endpoint}/v1/text-to-speech/{config.voice_id}/stream-input?{query}"
        self._shown_url = config.websocket_endpoint
        init: dict[str, Any] = {"text": " ", "generation_config": {
            "chunk_length_schedule": list(config.chunk_length_schedule)}}
        if config.voice_settings is not None and config.voice_settings.as_json():
            init["voice_settings"] = config.voice_settings.as_json()
        self._init = json.dumps(init)
        self.sockets = SparePool(self._open, lifetime=config.inactivity_timeout, pre_open=config.pre_open)

    async def aclose(self) -> None:
        await self.sockets.aclose()

    async def _open(self) -> Any:
        """A connected socket that has had its opening message."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        try:
            socket = await connect(
                self.url, additional_headers={"xi-api-key": self._key}, open_timeout=self.config.timeouts.connect,
                close_timeout=CLOSE_TIMEOUT, max_size=MAX_MESSAGE, compression=None,
            )
        except InvalidStatus as exc:
            raise self._status_error(exc) from None
        except TimeoutError:
            raise ProviderError(f"elevenlabs: {self._shown_url} did not complete the websocket handshake "
                                f"within {self.config.timeouts.connect:g} s") from None
        except Exception as exc:  # noqa: BLE001 - OSError, InvalidHandshake, InvalidMessage, ...
            raise errors.unreachable(exc, self._shown_url) or ProviderError(
                f"elevenlabs: cannot open the websocket to {self._shown_url} "
                f"({errors.scrub(f'{type(exc).__name__}: {exc}', self._key)})") from None
        try:
            await socket.send(self._init)
        except ConnectionClosed as exc:
            await socket.close()
            raise self._closed(exc, started=False) from None
        return socket

    def _status_error(self, exc: Any) -> ProviderError:
        response = exc.response
        try:
            body = json.loads(response.body or b"")
        except ValueError:
            body = (response.body or b"").decode("utf-8", "replace")
        kind, message = errors.body_detail(body, self._key)
        return errors.refused(int(response.status_code), kind, message, url=self._shown_url,
                              voice_id=self.config.voice_id, model_id=self.config.model_id)

    def _closed(self, exc: Any, *, started: bool) -> ProviderError:
        received = getattr(exc, "rcvd", None)
        code = received.code if received is not None else None
        reason = received.reason if received is not None else ""
        return errors.closed(code, reason, key=self._key, url=self._shown_url, voice_id=self.config.voice_id,
                             model_id=self.config.model_id, started=started)

    async def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        if not text.strip():
            return
        socket, spare = await self.sockets.take()
        try:
            while True:
                try:
                    async with aclosing(self._speak(socket, text)) as chunks:
                        async for chunk in chunks:
                            spare = False  # audio has flowed: this clause is this socket's now
                            yield chunk
                    return
                except _Stale as stale:
                    if not spare:
                        raise stale.error from None
                # A spare the service closed while it waited (a restart, an idle limit shorter
                # than ours): one fresh socket, before anything was heard.
                self.sockets.release(socket)
                socket, spare = await self.sockets.open(), False
        finally:
            self.sockets.release(socket)

    async def _speak(self, socket: Any, text: str) -> AsyncGenerator[TTSAudio, None]:
        """One clause on one socket; raises :class:`_Stale` if the socket turns out closed before
        any audio, for a reason a fresh socket may not meet."""
        from websockets.exceptions import ConnectionClosed

        received = 0  # bytes of audio so far: the offset of each frame's alignment
        try:
            await socket.send(json.dumps({"text": text.strip() + " "}))
            await socket.send(json.dumps({"text": ""}))
            aligner = ClauseAligner(text)
            samples = WholeSamples(self.audio)
            marks: tuple[TextMark, ...] = ()
            while True:
                message = self._parse(await socket.recv())
                audio = message.get("audio")
                if audio:
                    raw = self._decode(audio)
                    alignment = message.get("alignment") or message.get("normalizedAlignment")
                    marks += aligner.marks(alignment, self.audio.seconds(received))
                    received += len(raw)
                    data = samples.take(raw)
                    if data:
                        yield self.audio.audio(data, marks)
                        marks = ()
                if message.get("isFinal") is True:
                    break
        except ConnectionClosed as exc:
            error = self._closed(exc, started=received > 0)
            if not received and errors.worth_a_fresh_socket(exc.rcvd.code if exc.rcvd else None,
                                                            exc.rcvd.reason if exc.rcvd else ""):
                raise _Stale(error) from None
            raise error from None
        if samples.ragged:
            raise ProviderError(f"elevenlabs: {self._shown_url} sent audio ending mid-sample "
                                "(an odd number of bytes): the stream is corrupt")

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        if isinstance(raw, bytes):
            raise ProviderError(f"elevenlabs: {self._shown_url} sent a binary frame where JSON was expected")
        try:
            message = json.loads(raw)
        except ValueError:
            raise ProviderError(f"elevenlabs: {self._shown_url} sent a malformed message (not JSON)") from None
        if not isinstance(message, dict):
            raise ProviderError(f"elevenlabs: {self._shown_url} sent a malformed message (not a JSON object)")
        problem = message.get("error")
        if problem and not message.get("audio"):
            detail = errors.scrub(str(message.get("message") or problem), self._key)
            raise errors.closed(1008, detail, key=self._key, url=self._shown_url, voice_id=self.config.voice_id,
                                model_id=self.config.model_id, started=False)
        return message

    def _decode(self, audio: object) -> bytes:
        if not isinstance(audio, str):
            raise ProviderError(f"elevenlabs: {self._shown_url} sent audio that is not a base64 string")
        try:
            return base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(f"elevenlabs: {self._shown_url} sent malformed audio (not base64)") from None


class _Stale(Exception):
    """A socket was found closed before the clause's first audio (see ``synthesize``)."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error
