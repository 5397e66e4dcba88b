"""The ``deepgram`` STT provider: one SDK client per config, one websocket per call."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from voiceflow.clock import current_clock
from voiceflow.frames import SAMPLE_RATE
from voiceflow.providers import ProviderError, STTProvider
from voiceflow_deepgram.client import Connection, connect
from voiceflow_deepgram.config import DeepgramSTTConfig
from voiceflow_deepgram.errors import map_error
from voiceflow_deepgram.listen import DeepgramStream, Socket


class DeepgramSTT(STTProvider[DeepgramSTTConfig]):
    """Deepgram streaming recognition (nova-3) over its websocket: interims, phrase finals, Finalize."""

    name = "deepgram"
    config_model = DeepgramSTTConfig

    def __init__(self, config: DeepgramSTTConfig) -> None:
        super().__init__(config)
        self._connection: Connection | None = None

    async def prepare(self) -> None:
        if self._connection is None:
            self._connection = await connect(self.config, name="deepgram")

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()

    async def open_stream(self) -> DeepgramStream:
        """Open the call's websocket; raises a mapped, key-free ProviderError if it cannot."""
        if self._connection is None:
            raise ProviderError("deepgram: open_stream() called before prepare()")
        try:
            socket = await self._open()
        except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped
            raise self._error(exc) from None
        return DeepgramStream(socket, self._open, self.config, current_clock(), self._error,
                              url=self.url, key=self._connection.key)

    @property
    def url(self) -> str:
        return self.config.websocket_root + "/v1/listen"

    def options(self) -> dict[str, Any]:
        """The query of ``/v1/listen``: what Deepgram is asked to do."""
        config = self.config
        options: dict[str, Any] = {
            "model": config.model,
            "encoding": "linear16",
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "interim_results": config.interim_results,
            "smart_format": config.smart_format,
            "punctuate": True,
            "vad_events": True,
            "endpointing": config.endpointing_ms if config.endpointing_ms else False,
        }
        if config.language is not None:
            options["language"] = config.language
        if config.utterance_end_ms is not None:
            options["utterance_end_ms"] = config.utterance_end_ms
        return options

    async def _open(self) -> Socket:
        assert self._connection is not None
        stack = AsyncExitStack()
        try:
            conn = await stack.enter_async_context(self._connection.client.listen.v1.connect(**self.options()))
        except BaseException:
            await stack.aclose()
            raise
        return Socket(conn, stack)

    def _error(self, exc: BaseException) -> ProviderError:
        key = self._connection.key if self._connection is not None else None
        return map_error(exc, url=self.url, model=self.config.model, key=key)
