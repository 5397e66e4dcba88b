"""The ElevenLabs TTS provider: the key, the transport, and nothing per call.

One instance per config serves every call in the process. Per-clause state lives in the
synthesis generator (:mod:`.stream_input`, :mod:`.http_stream`); the only state shared across
clauses is the websocket side's spare socket.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from voiceflow.compute import run_in_thread
from voiceflow.frames import TTSAudio
from voiceflow.providers import ProviderError, ProviderUnavailable, TTSProvider
from voiceflow_elevenlabs.config import ElevenLabsConfig
from voiceflow_elevenlabs.formats import ULAW_8000
from voiceflow_elevenlabs.http_stream import HTTPStream, import_sdk
from voiceflow_elevenlabs.stream_input import StreamInput

KEY_VARIABLE = "ELEVENLABS_API_KEY"


def _check_websockets() -> None:
    try:
        import websockets.asyncio.client  # noqa: F401
    except ImportError as exc:
        raise ProviderUnavailable(
            "elevenlabs: the websockets package is not installed: pip install 'websockets>=13'"
        ) from exc


class ElevenLabsTTS(TTSProvider[ElevenLabsConfig]):
    """ElevenLabs streaming TTS (stream-input websocket with alignment, or HTTP), 16 kHz PCM."""

    name = "elevenlabs"
    config_model = ElevenLabsConfig

    def __init__(self, config: ElevenLabsConfig) -> None:
        super().__init__(config)
        self._side: StreamInput | HTTPStream | None = None
        self._phone: StreamInput | None = None
        """Phone calls' stream-input sockets (μ-law in the URL), opened on first use."""
        self._key = ""

    async def prepare(self) -> None:
        """Check the runtime and the key; no request is made, so a service that is down at boot
        is not fatal (the first clause fails and the chain falls back)."""
        if self._side is not None:
            return
        await run_in_thread(_check_websockets if self.config.transport == "websocket" else import_sdk)
        # An empty key (``${ELEVENLABS_API_KEY:-}`` with the variable unset) means no key.
        key = (self.config.api_key.get_secret_value() if self.config.api_key is not None else "") or (
            os.environ.get(KEY_VARIABLE) or "")
        if not key:
            raise ProviderUnavailable(
                f"elevenlabs: no API key: set api_key (e.g. api_key: ${{{KEY_VARIABLE}}}) or the "
                f"{KEY_VARIABLE} environment variable"
            )
        self._key = key
        if self.config.transport == "websocket":
            self._side = StreamInput(self.config, key)
        else:
            side = HTTPStream(self.config, key)
            await side.open()
            self._side = side

    async def aclose(self) -> None:
        side, self._side = self._side, None
        phone, self._phone = self._phone, None
        for each in (side, phone):
            if each is not None:
                await each.aclose()

    def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        """Stream 16 kHz PCM for one clause as it is generated (websocket: with alignment marks)."""
        side = self._side
        if side is None:
            raise ProviderError("elevenlabs: synthesize() called before prepare()")
        return side.synthesize(text)

    def synthesize_for(self, text: str, wire_format: str) -> AsyncIterator[TTSAudio]:
        """On a μ-law 8 kHz phone line, ElevenLabs' own ``ulaw_8000`` (``phone_audio``)."""
        side = self._side
        if wire_format != "mulaw/8000" or not self.config.phone_audio or side is None:
            return self.synthesize(text)
        if isinstance(side, HTTPStream):
            return side.synthesize(text, ULAW_8000)
        if self._phone is None:
            self._phone = StreamInput(self.config, self._key, ULAW_8000)
        return self._phone.synthesize(text)
