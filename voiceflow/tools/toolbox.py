"""A call's tools: what the LLM is offered, and running what it asks for without ever failing
the call.

Whatever goes wrong with a tool (a name the model made up, arguments that are not JSON, a
service that is down or slow, a plugin's bug) becomes an error *result* the LLM reads and can
explain to the caller; the call goes on. Every run has a deadline and is marked busy on the
session clock (it is real work the clock cannot see).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from voiceflow.clock import Clock
from voiceflow.config.tools import RESET_STATE, ToolConfig
from voiceflow.frames import ToolCall, ToolSpec
from voiceflow.redaction import redact
from voiceflow.tools.api import ToolCallContext, ToolFailed, ToolFunction, ToolResult, llm_name
from voiceflow.tools.webhook import WebhookClient

if TYPE_CHECKING:
    from voiceflow.plugins.registry import PluginRegistry

log = structlog.get_logger("voiceflow.tools")

MAX_RESULT_CHARS = 16_000
"""A result longer than this is cut before it reaches the LLM's context."""


@dataclass(frozen=True, slots=True)
class BoundTool:
    """A tool of the agent file, resolved: what the LLM sees, and what runs it."""

    config: ToolConfig
    spec: ToolSpec
    function: ToolFunction | None
    """The plugin's function; ``None`` for a webhook tool."""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """One tool call, run: for the LLM (``content``), the timeline and the conversation state."""

    call: ToolCall
    tool: str
    content: str
    error: str | None
    state: str | None
    started: float
    ended: float

    def as_dict(self, origin: float) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": redact(self.call.arguments),
            "result": redact(self.content[:500]),
            "error": self.error,
            "state": self.state,
            "started": round(self.started - origin, 4),
            "seconds": round(self.ended - self.started, 4),
        }


def bind_tools(configs: Iterable[ToolConfig], registry: PluginRegistry) -> list[BoundTool]:
    """Resolve the agent file's tools against the plugins' (validation already checked names)."""
    bound: list[BoundTool] = []
    for config in configs:
        function: ToolFunction | None = None
        description, parameters = config.description, config.parameters
        if config.function is not None:
            tool = registry.tool(config.function).tool
            function = tool.run
            description = description or tool.description
            parameters = parameters or tool.parameters
        spec = ToolSpec(
            llm_name(config.tool_name),
            description or "",
            parameters or {"type": "object", "properties": {}},
        )
        bound.append(BoundTool(config, spec, function))
    return bound


class Toolbox:
    """The tools of one call."""

    def __init__(self, tools: Sequence[BoundTool], clock: Clock, call_id: str, states: Iterable[str]) -> None:
        self._tools = {tool.spec.name: tool for tool in tools}
        self._clock = clock
        self._call_id = call_id
        self._states = {*states, RESET_STATE}
        self._webhooks = WebhookClient()

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    def filler(self, calls: Sequence[ToolCall]) -> tuple[float, str] | None:
        """The line to say while these calls run, and after how long: the soonest of theirs."""
        fillers = [
            (tool.config.filler_after, tool.config.filler)
            for call in calls
            if (tool := self._tools.get(call.name)) is not None and tool.config.filler
        ]
        return min(fillers, key=lambda filler: filler[0]) if fillers else None

    async def run(self, call: ToolCall, state: str | None) -> ToolOutcome:
        """Run one call to completion or its deadline. Never raises (but is cancellable)."""
        started = self._clock.now()
        tool = self._tools.get(call.name)
        result: ToolResult | None = None
        error: str | None = None
        if tool is None:
            error = f"there is no tool named {call.name!r}"
        else:
            try:
                arguments = _arguments(call.arguments)
                result = await self._run(tool, arguments, ToolCallContext(self._call_id, state))
            except ToolFailed as exc:
                error = str(exc) or "the tool failed"
            except Exception as exc:  # noqa: BLE001 - a tool's bug must not end the call
                log.exception("tool raised", tool=call.name, error=redact(f"{type(exc).__name__}: {exc}"))
                error = "the tool failed with an internal error"
        error = redact(error) if error is not None else None
        content = json.dumps({"error": error}) if error is not None else _content(result)
        switch = None
        if result is not None and tool is not None:
            switch = self._state_after(tool, result)
        outcome = ToolOutcome(call, tool.config.tool_name if tool else call.name, content, error, switch,
                              started, self._clock.now())
        log.info("tool ran", tool=outcome.tool, error=error, state=switch, seconds=round(outcome.ended - started, 3))
        return outcome

    async def _run(self, tool: BoundTool, arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
        seconds = tool.config.timeout
        with self._clock.busy(), anyio.move_on_after(seconds) as scope:
            if tool.function is not None:
                answer = await tool.function(arguments, call)
            else:
                assert tool.config.webhook is not None
                answer = await self._webhooks.post(tool.config.webhook, tool.config.tool_name, arguments, call)
            return answer if isinstance(answer, ToolResult) else ToolResult(answer)
        assert scope.cancelled_caught
        raise ToolFailed(f"the tool did not answer within {seconds:g} s")

    def _state_after(self, tool: BoundTool, result: ToolResult) -> str | None:
        state = result.state or tool.config.sets_state
        if state is not None and state not in self._states:
            log.warning("tool asked for an unknown conversation state: ignored", tool=tool.config.tool_name,
                        state=state, known=sorted(self._states))
            return None
        return state

    async def aclose(self) -> None:
        await self._webhooks.aclose()


def _arguments(text: str) -> dict[str, Any]:
    try:
        arguments = json.loads(text or "{}")
    except ValueError:
        raise ToolFailed(f"the arguments are not valid JSON: {text[:200]!r}") from None
    if not isinstance(arguments, dict):
        raise ToolFailed("the arguments must be a JSON object")
    return arguments


def _content(result: ToolResult | None) -> str:
    content = result.content if result is not None else None
    text = content if isinstance(content, str) else json.dumps(content, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "…"
