"""What a tool is, to the runtime and to a plugin author."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""Names a plugin may register (dots allowed, for ``package.tool``); what the LLM sees is
:func:`llm_name` of it, since chat APIs accept only ``[A-Za-z0-9_-]``."""


def llm_name(name: str) -> str:
    """The tool's name as the LLM sees it: chat APIs refuse dots in function names."""
    return name.replace(".", "_")


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    """What a tool may know about the call it runs in."""

    call_id: str
    state: str | None
    """The conversation state when the tool was called (``None``: the agent's defaults)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer. ``content`` goes back to the LLM: a string as is, anything else as JSON.

    ``state`` switches the conversation state (and so the turn-taking overrides of
    ``turn_taking.states``), e.g. to a state with longer pauses while the caller reads out a card
    number. ``"default"`` goes back to the agent's defaults; ``None`` leaves the state alone.
    """

    content: Any
    state: str | None = None


class ToolFailed(Exception):
    """Raised by a tool to tell the LLM it failed, in words the LLM can pass on to the caller.

    Any other exception is a bug in the tool: it is logged with its traceback, and the LLM is
    told only that the tool failed.
    """


ToolFunction = Callable[[dict[str, Any], ToolCallContext], Awaitable[ToolResult | Any]]
"""A tool's code: the parsed arguments and the call's context in, a :class:`ToolResult` (or any
JSON-able value, taken as its content) out."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A Python tool a plugin registers. ``parameters`` is the JSON schema of its arguments."""

    name: str
    description: str
    run: ToolFunction
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must be 1–64 letters, digits, '_', '-' or '.'")
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON schema with type 'object'")
