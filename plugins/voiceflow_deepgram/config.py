"""Configuration of the Deepgram providers: streaming STT (``deepgram``) and Aura TTS
(``deepgram-aura``). Both share how they reach Deepgram (:class:`DeepgramAccess`)."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from voiceflow.config.base import ProviderConfig

OFFICIAL_BASE_URL = "https://api.deepgram.com"
OFFICIAL_HOST = "api.deepgram.com"

_TO_WEBSOCKET = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_TO_HTTP = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _root_url(value: str | None) -> str | None:
    """A server root: http(s) or ws(s), a host, maybe a path prefix; no user, query or fragment."""
    if value is None:
        return None
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in _TO_WEBSOCKET or not parts.hostname:
        raise ValueError("must be an http(s):// or ws(s):// URL with a host, such as http://127.0.0.1:8080")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user or password: put the key in api_key")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query (?...) or fragment (#...)")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError(f"has a bad port ({exc})") from None
    if parts.path.rstrip("/").endswith("/v1"):
        raise ValueError("is the server's root, without /v1 (the SDK adds /v1/listen and /v1/speak)")
    return url.rstrip("/")


def _with_scheme(url: str, schemes: dict[str, str]) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=schemes[parts.scheme]))


class DeepgramAccess(ProviderConfig):
    """Where Deepgram is and the key it wants: shared by the STT and the TTS."""

    api_key: SecretStr | None = Field(
        None,
        description=(
            "Deepgram API key, sent as 'Authorization: Token'. Write `api_key: ${DEEPGRAM_API_KEY}`. "
            "When unset, Deepgram's own service uses the DEEPGRAM_API_KEY environment variable (the "
            "entry is refused at start-up if that is unset too); a self-hosted base_url gets a "
            "placeholder, so your Deepgram key is never sent to a server that is not Deepgram's."
        ),
    )
    base_url: str | None = Field(
        None,
        max_length=2048,
        description=(
            "Root of the API, without /v1: unset means Deepgram's own (https://api.deepgram.com); a "
            "self-hosted server is e.g. 'http://10.0.0.5:8080'. Websockets go to the same host with "
            "ws:// or wss:// unless websocket_url says otherwise."
        ),
    )
    websocket_url: str | None = Field(
        None,
        max_length=2048,
        description=(
            "Root for websockets (streaming STT, Aura's websocket) when it differs from base_url, "
            "e.g. 'ws://127.0.0.1:9001' for a proxy or the fake server in voiceflow.testing."
        ),
    )

    @field_validator("base_url", "websocket_url")
    @classmethod
    def _server_root(cls, value: str | None) -> str | None:
        return _root_url(value)

    @property
    def rest_root(self) -> str:
        """The REST root in use (Deepgram's when none is given)."""
        return _with_scheme(self.base_url, _TO_HTTP) if self.base_url else OFFICIAL_BASE_URL

    @property
    def websocket_root(self) -> str:
        """The websocket root in use (from ``websocket_url``, else ``base_url`` as ws(s))."""
        return _with_scheme(self.websocket_url or self.rest_root, _TO_WEBSOCKET)

    @property
    def endpoint(self) -> str:
        """The root this provider talks to (the websocket's, unless a subclass says otherwise)."""
        return self.websocket_root

    @property
    def is_official(self) -> bool:
        """Whether requests go to Deepgram itself (whose key must not go anywhere else)."""
        return urlsplit(self.endpoint).hostname == OFFICIAL_HOST


class DeepgramSTTConfig(DeepgramAccess):
    """Deepgram streaming recognition over its websocket (nova-3 by default)."""

    provider: Literal["deepgram"] = Field(description="Selects Deepgram's streaming speech recognition.")
    model: str = Field("nova-3", min_length=1, max_length=128, description="Deepgram model, e.g. 'nova-3', 'nova-2-phonecall'.")
    language: str | None = Field(
        "en", min_length=2, max_length=32, description="Language of the caller ('en', 'en-US', 'multi', ...); null: the model's default."
    )
    endpointing_ms: int = Field(
        300,
        ge=0,
        le=10_000,
        description=(
            "Silence, in ms, after which Deepgram ends a phrase with a final of its own accord "
            "(speech_final). 0 turns it off: finals then come only when voiceflow asks (finalize). "
            "voiceflow's own endpointing decides the turn either way; this only shapes the finals."
        ),
    )
    utterance_end_ms: int | None = Field(
        1000,
        ge=1000,
        le=10_000,
        description=(
            "Gap between words, in ms, after which Deepgram sends UtteranceEnd (passed on as an "
            "empty final with speech_final set: a hint, never a turn end on its own). Needs "
            "interim_results. null turns it off."
        ),
    )
    interim_results: bool = Field(True, description="Ask for interim transcripts while the caller speaks.")
    smart_format: bool = Field(True, description="Deepgram's formatting: punctuation, numerals, dates, ...")
    keepalive_seconds: float = Field(
        4.0,
        gt=0,
        le=9.0,
        description=(
            "Send KeepAlive when no audio has been sent for this long (a muted or paused caller), "
            "since Deepgram drops a stream that hears nothing for about 10 s."
        ),
    )
    finalize_timeout: float = Field(
        1.0,
        gt=0,
        le=10.0,
        description=(
            "Seconds to wait for Deepgram's answer to Finalize. Finalize on an empty buffer is not "
            "answered at all, so after this long the provider answers it with an empty final itself."
        ),
    )
    max_reconnects: int = Field(
        2,
        ge=0,
        le=10,
        description=(
            "Times in a row a dropped stream is reopened (each within timeouts.connect) before the "
            "stream fails and the call's STT chain takes over. 0: a drop fails the stream at once."
        ),
    )
    replay_seconds: float = Field(
        30.0,
        ge=0,
        le=120.0,
        description=(
            "Caller audio kept since Deepgram's last final, sent again on a reopened stream so no "
            "words are lost to a drop."
        ),
    )

    @model_validator(mode="after")
    def _utterance_end_needs_interims(self) -> Self:
        if self.utterance_end_ms is not None and not self.interim_results:
            raise ValueError("utterance_end_ms needs interim_results: true (Deepgram refuses it otherwise)")
        return self


class AuraConfig(DeepgramAccess):
    """Deepgram Aura text-to-speech, streamed."""

    provider: Literal["deepgram-aura"] = Field(description="Selects Deepgram Aura text-to-speech.")
    model: str = Field(
        "aura-2-thalia-en", min_length=1, max_length=128, description="Aura voice, e.g. 'aura-2-thalia-en', 'aura-2-apollo-en'."
    )
    transport: Literal["websocket", "rest"] = Field(
        "websocket",
        description=(
            "'websocket': one socket kept open across clauses (Speak, Flush; Clear on barge-in), no "
            "connection set-up per clause. 'rest': one streamed POST per clause."
        ),
    )
    sample_rate: Literal[8000, 16000, 24000, 48000] = Field(
        16000, description="Rate Aura is asked for (linear16); 16000 is voiceflow's own, so nothing is resampled."
    )
    phone_audio: bool = Field(
        True,
        description="On phone lines (a μ-law 8 kHz wire, e.g. Twilio), ask Aura for μ-law 8 kHz itself: "
        "its audio then reaches the caller untouched instead of being resampled and encoded again. "
        "False: always linear16 at sample_rate.",
    )
    @property
    def endpoint(self) -> str:
        return self.websocket_root if self.transport == "websocket" else self.rest_root

    socket_idle_seconds: float = Field(
        20.0,
        ge=0,
        le=600.0,
        description=(
            "websocket transport: how long an idle socket is kept for the next clause. 0 opens one "
            "socket per clause."
        ),
    )
