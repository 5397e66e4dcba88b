"""The ``tools:`` block of an agent file: functions the LLM may call, and what runs them."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from voiceflow.config.base import Strict

TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
RESET_STATE = "default"
"""``sets_state: default`` goes back to the agent's own turn-taking settings."""


class Webhook(Strict):
    """An HTTP endpoint that runs the tool: the arguments are POSTed to it as a JSON object."""

    url: str = Field(
        max_length=2048,
        pattern=r"^https?://[^\s/]+",
        description="Where the arguments are POSTed (http or https). The response body (JSON or "
        "text) goes back to the LLM; a response header `Voiceflow-State: <state>` switches the "
        "conversation state.",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Extra request headers, e.g. `Authorization: Bearer ${ORDERS_TOKEN}`. Their "
        "values are secrets: never logged, never in the timeline.",
    )

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in headers:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"header name {name!r} must be letters, digits, '-' or '_'")
        return headers


class ToolConfig(Strict):
    """One tool the LLM may call. Either a `webhook` (any HTTP service, no Python) or a `function`
    registered by an installed plugin (`voiceflow plugins` lists them)."""

    name: str | None = Field(
        None,
        pattern=TOOL_NAME_PATTERN,
        description="The tool's name, as the LLM sees it. Required for a webhook; a function "
        "tool defaults to the function's registered name.",
    )
    description: str | None = Field(
        None,
        min_length=1,
        max_length=4000,
        description="What the tool does and when to use it, for the LLM. Required for a webhook; "
        "a function tool defaults to its plugin's description.",
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="JSON schema of the arguments (`type: object`). A webhook defaults to no "
        "arguments; a function tool to its plugin's schema.",
    )
    webhook: Webhook | None = Field(None, description="Run the tool by POSTing to this HTTP endpoint.")
    function: str | None = Field(
        None, pattern=TOOL_NAME_PATTERN, description="Run the tool with this plugin-registered function."
    )
    timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds the tool may take; then the LLM is told it timed out."
    )
    filler: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Said if the tool is still running after `filler_after` seconds, so the caller "
        "is not left in silence (e.g. \"One moment while I look that up.\").",
    )
    filler_after: float = Field(1.0, ge=0, le=60, description="Seconds before the filler line is said.")
    sets_state: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="When the tool succeeds, switch to this conversation state (a key of "
        f"`turn_taking.states`, or `{RESET_STATE}` for the agent's own settings).",
    )

    @field_validator("parameters")
    @classmethod
    def _json_schema(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if parameters is None:
            return None
        if parameters.get("type") != "object":
            raise ValueError("must be a JSON schema of an object (type: object)")
        try:
            json.dumps(parameters, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be plain JSON ({exc})") from None
        return parameters

    @model_validator(mode="after")
    def _one_runner(self) -> ToolConfig:
        if (self.webhook is None) == (self.function is None):
            raise ValueError("a tool needs exactly one of `webhook` or `function`")
        if self.webhook is not None:
            missing = [f for f in ("name", "description") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a webhook tool needs {' and '.join(missing)}")
        return self

    @property
    def tool_name(self) -> str:
        name = self.name or self.function
        assert name is not None  # one of them is set (validated)
        return name
