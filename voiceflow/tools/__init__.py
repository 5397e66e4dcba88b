"""Tools the LLM can call during a conversation: the public API for plugins.

A plugin adds a Python tool with the ``register_tools`` hook::

    from voiceflow.plugins.hookspecs import hookimpl
    from voiceflow.tools import Tool, ToolCallContext, ToolResult

    async def check_order(arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
        status = await my_backend.status(arguments["order_number"])
        return ToolResult({"status": status})

    @hookimpl
    def register_tools(register):
        register(Tool(
            name="orders.check",
            description="The status of an order, by its number.",
            parameters={"type": "object", "properties": {"order_number": {"type": "string"}},
                        "required": ["order_number"]},
            run=check_order,
        ))

and an agent file offers it to its LLM with ``tools: [{function: orders.check}]``. Agent files
can also declare HTTP webhook tools without any Python (see docs/tools.md).
"""

from voiceflow.tools.api import Tool, ToolCallContext, ToolFailed, ToolFunction, ToolResult

__all__ = ["Tool", "ToolCallContext", "ToolFailed", "ToolFunction", "ToolResult"]
