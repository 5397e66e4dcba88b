"""The twilio transport's settings (the ``transport:`` block of an agent file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, TypeAdapter, ValidationError, field_validator

from voiceflow.config.base import ProviderConfig

OFFICIAL_API = "https://api.twilio.com"
_HTTP_URL = TypeAdapter(HttpUrl)
VOICE_PATH = "/twilio/voice"
"""The voice webhook, under the agent's URL (/agents/<name>)."""
STREAM_PATH = "/twilio/stream"
"""The media stream, under the agent's URL."""


def _base_url(value: str | None) -> str | None:
    """An http(s) address with a host and maybe a path prefix, without a trailing slash. Empty is
    unset (``${VOICEFLOW_PUBLIC_URL:-}``)."""
    if value is None or not value.strip():
        return None
    try:
        url = _HTTP_URL.validate_python(value.strip())
    except ValidationError:
        raise ValueError("must be an http:// or https:// URL with a host, such as https://voice.example.com") from None
    if url.username or url.password or url.query or url.fragment:
        raise ValueError("must be the server's address (maybe with a path): no user, query (?...) or fragment (#...)")
    return str(url).rstrip("/")


class TwilioConfig(ProviderConfig):
    provider: Literal["twilio"] = "twilio"
    public_url: str | None = Field(
        None,
        max_length=2048,
        description="This server's address as Twilio reaches it (an ngrok tunnel, a load balancer), "
        "e.g. https://voice.example.com: the webhook is <public_url>/agents/<name>/twilio/voice and "
        "the media stream wss://…/agents/<name>/twilio/stream. Unset: taken from each webhook "
        "request's Host header and scheme (X-Forwarded-Proto from a local proxy counts); empty "
        "is unset.",
    )
    auth_token: SecretStr | None = Field(
        None,
        description="The Twilio account's auth token (write `auth_token: ${TWILIO_AUTH_TOKEN}`). With "
        "it the webhook accepts only requests signed by Twilio (X-Twilio-Signature) and the agent "
        "hangs up through Twilio's REST API; without it the webhook stays behind the access token.",
    )
    account_sid: str | None = Field(
        None,
        pattern=r"^AC[0-9a-fA-F]{32}$",
        description="The account SID for the REST API's hang-up; by default the account Twilio "
        "names in each call.",
    )
    api_base: str = Field(
        OFFICIAL_API,
        max_length=2048,
        description="Twilio's REST API root (tests point it at voiceflow.testing.fake_twilio).",
    )
    ahead: float = Field(
        1.0,
        ge=0.1,
        le=10,
        description="Seconds of agent audio sent to Twilio beyond what it has reported played (its "
        "echoed marks): more rides out network jitter, less makes a barge-in discard less.",
    )
    ticket_ttl: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Seconds the media-stream ticket in the webhook's answer stays valid (and a "
        "place for the call is held) until Twilio opens the stream.",
    )
    hangup_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds the REST API gets to confirm a hang-up."
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return _base_url(value)

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        url = _base_url(value)
        if url is None:
            raise ValueError("must not be empty")
        return url

    @field_validator("auth_token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty (is its environment variable set?); remove the field to run without it")
        return value
