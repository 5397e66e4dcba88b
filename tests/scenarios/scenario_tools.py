"""Python tools for the tool scenarios (tests/scenarios/data/tools.yaml): a plugin module, as a
third-party package would register them (``voiceflow test --plugin scenario_tools``)."""

from __future__ import annotations

from typing import Any

from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.tools import Tool, ToolCallContext, ToolResult


async def order_status(arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
    return ToolResult({"order": arguments.get("order"), "status": "shipped", "eta": "Friday"})


async def start_spelling(arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
    return ToolResult("ok")


@hookimpl
def register_tools(register: Any) -> None:
    register(Tool("demo.order_status", "The status of an order.", order_status,
                  {"type": "object", "properties": {"order": {"type": "string"}}}))
    register(Tool("demo.start_spelling", "The caller is about to spell something.", start_spelling))
