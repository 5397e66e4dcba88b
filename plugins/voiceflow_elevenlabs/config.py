"""Configuration of the ElevenLabs TTS (the stream-input websocket, or the HTTP streaming endpoint)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from voiceflow.config.base import ProviderConfig, Strict

OFFICIAL_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_VOICE_ID = "JBFqnCBsd6RMkjVDRZzb"
"""A premade voice every account has ("George"), so an agent works before a voice is chosen."""

ScheduleStep = Annotated[int, Field(ge=50, le=500)]
"""Characters buffered before a generation: ElevenLabs accepts 50–500."""


class ElevenLabsVoiceSettings(Strict):
    """Per-request voice settings; unset values keep the voice's own stored settings."""

    stability: float | None = Field(
        None, ge=0.0, le=1.0,
        description="0–1: lower is more expressive and varied, higher is steadier and more monotone.",
    )
    similarity_boost: float | None = Field(
        None, ge=0.0, le=1.0, description="0–1: how closely the voice keeps to the original speaker.",
    )
    style: float | None = Field(
        None, ge=0.0, le=1.0,
        description="0–1: style exaggeration; above 0 adds latency, so keep 0 for live calls.",
    )
    speed: float | None = Field(
        None, ge=0.7, le=1.2, description="Speaking rate, 0.7–1.2 (1.0 is the voice's natural pace).",
    )
    use_speaker_boost: bool | None = Field(
        None, description="Boost similarity to the original speaker (adds a little latency)."
    )

    def as_json(self) -> dict[str, float | bool]:
        """The settings that were set, as ElevenLabs' ``voice_settings`` object."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class ElevenLabsConfig(ProviderConfig):
    """An ElevenLabs voice, streamed over the stream-input websocket (default) or HTTP."""

    provider: Literal["elevenlabs"] = Field(description="Selects the ElevenLabs TTS.")
    api_key: SecretStr | None = Field(
        None,
        description=(
            "API key, sent as the xi-api-key header. Write `api_key: ${ELEVENLABS_API_KEY}`. When "
            "unset (or empty), the ELEVENLABS_API_KEY environment variable is used; with neither, "
            "the entry is unavailable and the chain starts on the next one."
        ),
    )
    voice_id: str = Field(
        DEFAULT_VOICE_ID,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The voice's id (from the voice library or GET /v1/voices), e.g. 'JBFqnCBsd6RMkjVDRZzb'.",
    )
    model_id: str = Field(
        "eleven_flash_v2_5",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description=(
            "Model: 'eleven_flash_v2_5' is the fastest (about 75 ms of model time, 32 languages); "
            "'eleven_turbo_v2_5' is a little slower and richer. Models without websocket support "
            "(eleven_v3) need transport: http."
        ),
    )
    transport: Literal["websocket", "http"] = Field(
        "websocket",
        description=(
            "'websocket': the stream-input socket, with per-character alignment (what the caller "
            "heard at barge-in is exact) and a spare socket opened while a clause plays, so the next "
            "one starts without a handshake. 'http': one streaming POST per clause, no alignment "
            "(the heard text is then estimated from the audio played)."
        ),
    )
    output_format: Literal["pcm_16000"] = Field(
        "pcm_16000",
        description=(
            "Fixed: raw 16-bit PCM at 16 kHz, voiceflow's internal rate, so the audio is never "
            "decoded or resampled on the way to the caller."
        ),
    )
    phone_audio: bool = Field(
        True,
        description=(
            "On phone lines (a μ-law 8 kHz wire, e.g. Twilio), ask for 'ulaw_8000' instead: the "
            "audio then reaches the caller untouched, not resampled and encoded again. False: always "
            "output_format."
        ),
    )
    voice_settings: ElevenLabsVoiceSettings | None = Field(
        None, description="Voice settings for every request; unset keeps the voice's stored settings."
    )
    chunk_length_schedule: list[ScheduleStep] = Field(
        [50, 120, 160, 250],
        min_length=1,
        max_length=8,
        description=(
            "websocket: characters the service buffers before generating each successive part of a "
            "clause (each 50–500). A small first value gives the first audio sooner; larger ones "
            "give the model more context. ElevenLabs' own default is [120, 160, 250, 290]."
        ),
    )
    optimize_streaming_latency: int | None = Field(
        None, ge=0, le=4,
        description=(
            "http: 0 (none) to 4 (most; also skips text normalisation, so numbers may be misread). "
            "Unset leaves the service's default."
        ),
    )
    inactivity_timeout: int = Field(
        20, ge=5, le=180,
        description=(
            "websocket: seconds the service keeps a socket that receives no text. A spare socket "
            "is dropped a little before this, so one is never used after the service closed it."
        ),
    )
    pre_open: bool = Field(
        True,
        description=(
            "websocket: open the next clause's socket while the current clause plays (saves the "
            "handshake, typically 100–300 ms, on every clause but a call's first)."
        ),
    )
    base_url: str | None = Field(
        None,
        max_length=2048,
        description=(
            f"Root of the API (default {OFFICIAL_BASE_URL}), for a proxy or a test server: "
            "http:// or https://, no path, user, query or fragment. The websocket uses the same host "
            "(ws:// or wss://)."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, such as http://127.0.0.1:8080")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold a user or password: put the key in api_key")
        if parts.path or parts.query or parts.fragment:
            raise ValueError("must be the root of the API only (no path, query or fragment)")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ValueError(f"has a bad port ({exc})") from None
        return url

    @property
    def endpoint(self) -> str:
        """The HTTP root in use (ElevenLabs' own when none is given)."""
        return self.base_url or OFFICIAL_BASE_URL

    @property
    def websocket_endpoint(self) -> str:
        """The same root as a websocket URL (ws:// for http://, wss:// for https://)."""
        endpoint = self.endpoint
        return "ws" + endpoint[4:] if endpoint.startswith("http") else endpoint
