"""Speaking one clause over ElevenLabs' HTTP streaming endpoint, through the official SDK.

``POST /v1/text-to-speech/{voice}/stream?output_format=pcm_16000``: one request per clause, raw
PCM streamed back as it is generated. Simpler than the websocket (no socket to keep, works with
every model) but with no alignment and a request's set-up before every clause.

Decisions, and why:

* ``max_retries=0``: the fallback chain decides what happens after a failure, within the caller's
  patience; the SDK's own retries (with back-off) would spend it on the same failing service.
* The SDK's timeout is a backstop above the chain's ``first_byte``/``idle`` deadlines, so it never
  races them, instead of its default four minutes.
* HTTP chunks split samples wherever they like: the odd byte is carried to the next chunk.
* Closing the generator (barge-in) closes the HTTP response at once, in ``finally``, shielded
  and bounded, so the service stops generating audio nobody will hear.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from voiceflow.compute import run_in_thread
from voiceflow.frames import TTSAudio
from voiceflow.providers import ProviderError, ProviderUnavailable
from voiceflow_elevenlabs import errors
from voiceflow_elevenlabs.config import ElevenLabsConfig
from voiceflow_elevenlabs.formats import PCM_16000, OutputFormat, WholeSamples

CLOSE_SECONDS = 1.0
BACKSTOP_MARGIN = 5.0
CHUNK_BYTES = 1_280
"""Bytes per chunk read from the response (40 ms): small, so the first audio is passed on early."""


def import_sdk() -> Any:
    try:
        import elevenlabs.client
    except ImportError as exc:
        raise ProviderUnavailable(
            "elevenlabs: the elevenlabs package is not installed: pip install 'voiceflow[cloud]'"
        ) from exc
    return elevenlabs


class HTTPStream:
    """The HTTP side of one provider: one SDK client, shared by every call."""

    def __init__(self, config: ElevenLabsConfig, key: str) -> None:
        self.config = config
        self._key = key
        self._client: Any = None
        self._http: Any = None
        self._settings: Any = None

    async def open(self) -> None:
        # Importing the SDK takes a good fraction of a second: not on the event loop.
        sdk = await run_in_thread(import_sdk)
        import httpx

        timeouts = self.config.timeouts
        backstop = max(timeouts.first_byte, timeouts.idle) + BACKSTOP_MARGIN
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(backstop, connect=timeouts.connect))
        self._client = sdk.client.AsyncElevenLabs(
            api_key=self._key, base_url=self.config.endpoint, timeout=backstop, httpx_client=self._http,
        )
        settings = self.config.voice_settings
        if settings is not None and settings.as_json():
            self._settings = sdk.VoiceSettings(**settings.as_json())

    async def aclose(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    async def synthesize(self, text: str, audio: OutputFormat = PCM_16000) -> AsyncIterator[TTSAudio]:
        client = self._client
        if client is None:
            raise ProviderError("elevenlabs: synthesize() called before prepare()")
        if not text.strip():
            return
        options: dict[str, Any] = {}
        if self.config.optimize_streaming_latency is not None:
            options["optimize_streaming_latency"] = self.config.optimize_streaming_latency
        if self._settings is not None:
            options["voice_settings"] = self._settings
        stream = client.text_to_speech.stream(
            self.config.voice_id, text=text.strip(), model_id=self.config.model_id,
            output_format=audio.name,
            request_options={"max_retries": 0, "chunk_size": CHUNK_BYTES}, **options,
        )
        samples = WholeSamples(audio)
        try:
            while True:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - every SDK and transport failure is mapped
                    raise self._error(exc) from None
                data = samples.take(chunk)
                if data:
                    yield audio.audio(data)
            if samples.ragged:
                raise ProviderError(f"elevenlabs: {self.config.endpoint} sent audio ending mid-sample "
                                    "(an odd number of bytes): the stream is corrupt")
        finally:
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await stream.aclose()

    def _error(self, exc: BaseException) -> ProviderError:
        import httpx
        from elevenlabs.core.api_error import ApiError

        url = self.config.endpoint
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, ApiError):
            kind, message = errors.body_detail(exc.body, self._key)
            return errors.refused(int(exc.status_code or 0), kind, message, url=url,
                                  voice_id=self.config.voice_id, model_id=self.config.model_id)
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError(f"elevenlabs: {url} did not answer in time")
        found = errors.unreachable(exc, url)
        if found is not None:
            return found
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return ProviderError(f"elevenlabs: {url} closed the connection mid-clause "
                                 f"({errors.scrub(str(exc), self._key)})")
        if isinstance(exc, httpx.ConnectError):
            return ProviderError(f"elevenlabs: cannot reach {url} ({errors.scrub(str(exc), self._key)})")
        return ProviderError(f"elevenlabs: {type(exc).__name__}: {errors.scrub(str(exc), self._key)}")
