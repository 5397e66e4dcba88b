"""Configuration of the OpenAI chat-completions LLM (OpenAI itself or any compatible server)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, JsonValue, SecretStr, field_validator

from voiceflow.config.base import ProviderConfig

OFFICIAL_BASE_URL = "https://api.openai.com/v1"

# Keys the provider sets itself; letting extra_body override them would break streaming or the
# fallback chain's timing (a second retry loop, a non-streamed reply).
RESERVED_BODY_KEYS = frozenset({"model", "messages", "stream", "stream_options", "n", "tools", "tool_choice"})


class OpenAIConfig(ProviderConfig):
    """An OpenAI chat-completions model, on OpenAI or on any server that speaks its API."""

    provider: Literal["openai"] = Field(description="Selects the OpenAI chat-completions LLM.")
    model: str = Field(
        "gpt-4o-mini",
        min_length=1,
        max_length=256,
        description=(
            "Model name as the server knows it: 'gpt-4o-mini' on OpenAI; on a compatible server "
            "whatever its /v1/models lists (vLLM: the served model, Ollama: 'llama3.2', ...)."
        ),
    )
    api_key: SecretStr | None = Field(
        None,
        description=(
            "API key, sent as 'Authorization: Bearer'. Write `api_key: ${OPENAI_API_KEY}`. When "
            "unset, the official API uses the OPENAI_API_KEY environment variable (the call is "
            "refused at start-up if that is unset too); any other base_url gets a placeholder key, "
            "so a local server that checks no key works without one, and your OpenAI key is never "
            "sent to a server that is not OpenAI's."
        ),
    )
    base_url: str | None = Field(
        None,
        max_length=2048,
        description=(
            "Root of the API, up to and including its version: usually ending in /v1 "
            "('http://127.0.0.1:8000/v1' for vLLM or llama.cpp's server, "
            "'http://127.0.0.1:11434/v1' for Ollama). Unset means OpenAI's own "
            f"({OFFICIAL_BASE_URL}). http or https, no user:password, query or fragment."
        ),
    )
    organization: str | None = Field(
        None, max_length=256, description="OpenAI organization id (sent as OpenAI-Organization), if the key needs one."
    )
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; unset leaves the server's default (some models accept only that).",
    )
    top_p: float | None = Field(
        None, gt=0.0, le=1.0, description="Nucleus sampling probability mass; unset leaves the server's default."
    )
    max_tokens: int | None = Field(
        300,
        ge=1,
        le=128_000,
        description="Longest reply in tokens (spoken replies should be short); unset leaves it to the server.",
    )
    max_tokens_parameter: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description=(
            "Which request field carries max_tokens: 'max_tokens' is understood by every compatible "
            "server; OpenAI's reasoning models (o-series, gpt-5) accept only 'max_completion_tokens'."
        ),
    )
    extra_body: dict[str, JsonValue] = Field(
        default_factory=dict,
        description=(
            "More request fields, sent as they are (e.g. {seed: 7}, or a server's own options such "
            "as vLLM's {top_k: 20}). May not set model, messages, stream, stream_options, n, tools "
            "or tool_choice."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, such as http://127.0.0.1:8000/v1")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold a user or password: put the key in api_key")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query (?...) or fragment (#...)")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ValueError(f"has a bad port ({exc})") from None
        return url.rstrip("/")

    @field_validator("extra_body")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        clash = sorted(RESERVED_BODY_KEYS & value.keys())
        if clash:
            raise ValueError(f"may not set {', '.join(clash)}: the provider sets them itself")
        return value

    @property
    def endpoint(self) -> str:
        """The base URL in use (OpenAI's when none is given)."""
        return self.base_url or OFFICIAL_BASE_URL

    @property
    def is_official(self) -> bool:
        """Whether requests go to OpenAI itself (whose key must not go anywhere else)."""
        return urlsplit(self.endpoint).hostname == urlsplit(OFFICIAL_BASE_URL).hostname
