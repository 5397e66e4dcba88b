"""The ``deepgram-aura`` TTS provider: Aura's audio streamed as linear16 at the rate asked for
(or, on a phone line, as μ-law 8 kHz: see :meth:`DeepgramAura.synthesize_for`).

* **websocket** (default): ``Speak`` with the clause, then ``Flush``; binary audio is yielded as it
  arrives until Deepgram answers the flush (``Flushed``). Sockets stay open across clauses and
  calls (:mod:`.speak`). When the clause is cancelled (barge-in) or its iterator closed, ``Clear``
  goes out and the generator returns at once; the socket is cleaned up by the next clause that
  takes it.
* **rest**: one streamed ``POST /v1/speak`` per clause (``speak.v1.audio.generate``); closing the
  iterator closes the HTTP stream.

Either way a chunk can end in the middle of a 16-bit sample; the odd byte is carried into the next
chunk, so every ``TTSAudio`` holds whole samples. SDK failures become key-free ProviderErrors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from voiceflow.frames import TTSAudio
from voiceflow.g711 import MULAW_RATE
from voiceflow.providers import ProviderError, TTSProvider
from voiceflow_deepgram.client import Connection, connect
from voiceflow_deepgram.config import AuraConfig
from voiceflow_deepgram.errors import map_error
from voiceflow_deepgram.speak import SpeakPool, SpeakSocket, abandon, field

CLOSE_SECONDS = 1.0
"""Longest wait for a REST stream to close after the clause was stopped."""


class _Samples:
    """Carries an odd trailing byte into the next chunk: chunks may split a 16-bit sample (μ-law
    samples are one byte: nothing to carry)."""

    def __init__(self, two_bytes: bool = True) -> None:
        self._odd = b""
        self._two_bytes = two_bytes

    def whole(self, chunk: bytes) -> bytes:
        if not self._two_bytes:
            return chunk
        data = self._odd + chunk if self._odd else chunk
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        return data[:cut]

    def finish(self, url: str) -> None:
        """The stream ended: an odd byte left over means bytes were lost on the way (the rest of
        the audio was out of step), a corrupt stream the chain must hear about."""
        if self._odd:
            raise ProviderError(f"deepgram-aura: {url} sent audio ending mid-sample (an odd number of bytes): "
                                "the stream is corrupt")


@dataclass(frozen=True, slots=True)
class _Format:
    """What Aura is asked for: its ``encoding`` and rate, and how the runtime is told."""

    encoding: str
    rate: int

    def audio(self, data: bytes) -> TTSAudio:
        return TTSAudio(data, self.rate, encoding="mulaw" if self.encoding == "mulaw" else "pcm16")


PHONE = _Format("mulaw", MULAW_RATE)


class DeepgramAura(TTSProvider[AuraConfig]):
    """Deepgram Aura text-to-speech, streamed as linear16 over a kept-open websocket (or REST)."""

    name = "deepgram-aura"
    config_model = AuraConfig

    def __init__(self, config: AuraConfig) -> None:
        super().__init__(config)
        self._connection: Connection | None = None
        self._pools: dict[_Format, SpeakPool] = {}
        self._pcm = _Format("linear16", config.sample_rate)

    async def prepare(self) -> None:
        if self._connection is None:
            self._connection = await connect(self.config, name="deepgram-aura")
            self._pools[self._pcm] = SpeakPool(partial(self._open, self._pcm), self.config.socket_idle_seconds)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        connection, self._connection = self._connection, None
        for pool in pools:
            await pool.aclose()
        if connection is not None:
            await connection.aclose()

    @property
    def pool(self) -> SpeakPool | None:
        """The linear16 sockets (phone calls have their own, opened on first use)."""
        return self._pools.get(self._pcm)

    def _pool_for(self, audio: _Format) -> SpeakPool | None:
        if self._connection is None:
            return None
        if audio not in self._pools:
            self._pools[audio] = SpeakPool(partial(self._open, audio), self.config.socket_idle_seconds)
        return self._pools[audio]

    @property
    def url(self) -> str:
        config = self.config
        root = config.websocket_root if config.transport == "websocket" else config.rest_root
        return root + "/v1/speak"

    def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        """Stream the clause's audio; closing the iterator stops it at once."""
        return self._speak(text, self._pcm)

    def synthesize_for(self, text: str, wire_format: str) -> AsyncIterator[TTSAudio]:
        """On a μ-law 8 kHz phone line, Aura's own μ-law (``phone_audio``)."""
        if wire_format == "mulaw/8000" and self.config.phone_audio:
            return self._speak(text, PHONE)
        return self.synthesize(text)

    def _speak(self, text: str, audio: _Format) -> AsyncIterator[TTSAudio]:
        if self.config.transport == "rest":
            return self._rest(text, audio)
        return self._websocket(text, audio)

    # --- websocket ---------------------------------------------------------------------------

    async def _websocket(self, text: str, audio: _Format) -> AsyncIterator[TTSAudio]:
        from deepgram.speak.v1.types import SpeakV1Text
        from websockets.exceptions import ConnectionClosed

        pool = self._pool_for(audio)
        if pool is None:
            raise ProviderError("deepgram-aura: synthesize() called before prepare()")
        samples = _Samples(audio.encoding == "linear16")
        socket: SpeakSocket | None = None
        flushed = False
        try:
            try:
                socket, reused = await pool.checkout()
                try:
                    await socket.conn.send_text(SpeakV1Text(type="Speak", text=text))
                    await socket.conn.send_flush()
                except (ConnectionClosed, OSError):
                    if not reused:
                        raise
                    # The server closed the idle socket meanwhile: once more, on a fresh one.
                    stale, socket = socket, None
                    await abandon(stale)
                    socket = await pool.open()
                    await socket.conn.send_text(SpeakV1Text(type="Speak", text=text))
                    await socket.conn.send_flush()
            except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped
                raise self._error(exc) from None
            while True:
                try:
                    message = await socket.conn.recv()
                except Exception as exc:  # noqa: BLE001
                    raise self._error(exc) from None
                if isinstance(message, bytes):
                    data = samples.whole(message)
                    if data:
                        yield audio.audio(data)
                elif field(message, "type") == "Flushed":
                    flushed = True
                    samples.finish(self.url)
                    return
                # Metadata, a stale Cleared, Warning: nothing to play.
        finally:
            if socket is not None:
                await pool.checkin(socket, clean=flushed)

    async def _open(self, audio: _Format) -> SpeakSocket:
        connection = self._connection
        if connection is None:
            raise ProviderError("deepgram-aura: the provider is closed")
        stack = AsyncExitStack()
        try:
            conn = await stack.enter_async_context(connection.client.speak.v1.connect(
                model=self.config.model, encoding=audio.encoding, sample_rate=audio.rate))
        except BaseException:
            await stack.aclose()
            raise
        return SpeakSocket(conn, stack)

    # --- REST --------------------------------------------------------------------------------

    async def _rest(self, text: str, audio: _Format) -> AsyncIterator[TTSAudio]:
        connection = self._connection
        if connection is None:
            raise ProviderError("deepgram-aura: synthesize() called before prepare()")
        samples = _Samples(audio.encoding == "linear16")
        stream: Any = connection.client.speak.v1.audio.generate(
            text=text, model=self.config.model, encoding=audio.encoding, sample_rate=audio.rate, container="none",
            request_options={"max_retries": 0},
        )
        try:
            while True:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    samples.finish(self.url)
                    return
                except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped
                    raise self._error(exc) from None
                data = samples.whole(chunk)
                if data:
                    yield audio.audio(data)
        finally:
            # Shielded: a cancelled clause (barge-in) must close its HTTP stream now, not when the
            # garbage collector gets to it; bounded, so a stuck close cannot hold the reply.
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await stream.aclose()

    def _error(self, exc: BaseException) -> ProviderError:
        key = self._connection.key if self._connection is not None else None
        return map_error(exc, url=self.url, model=self.config.model, key=key)
