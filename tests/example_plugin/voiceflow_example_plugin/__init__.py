"""An example third-party voiceflow plugin: an ``echo`` LLM that repeats the caller's last words,
and a ``example.clock`` tool that tells the time.

It uses only voiceflow's public plugin API (:mod:`voiceflow.providers`, :mod:`voiceflow.config.base`,
:mod:`voiceflow.frames`, :mod:`voiceflow.clock` and :data:`voiceflow.plugins.hookspecs.hookimpl`),
exactly as a package published on PyPI would. docs/writing-a-plugin.md walks through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from voiceflow.clock import current_clock
from voiceflow.config.base import ProviderConfig
from voiceflow.frames import Message
from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow.providers import LLMProvider
from voiceflow.tools import Tool, ToolCallContext, ToolResult

__all__ = ["CLOCK", "EchoConfig", "EchoLLM", "register_providers", "register_tools"]


class EchoConfig(ProviderConfig):
    """The ``llm:`` entry of an agent file that selects the echo provider."""

    provider: Literal["echo"] = Field(description="Selects the echo LLM.")
    prefix: str = Field("You said", description="Words said before the echoed text.")
    delay_ms: int = Field(
        0, ge=0, le=10_000, description="Pause between words, in milliseconds (simulates token latency)."
    )


class EchoLLM(LLMProvider[EchoConfig]):
    """Echo LLM: replies '<prefix>: <what the caller said>.' word by word (for tests and demos)."""

    name = "echo"
    config_model = EchoConfig

    def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        return self._stream(_last_user_text(messages))

    async def _stream(self, said: str) -> AsyncIterator[str]:
        reply = f"{self.config.prefix}: {said}." if said else f"{self.config.prefix} nothing."
        clock = current_clock()
        for i, word in enumerate(reply.split()):
            if i and self.config.delay_ms:
                # The session clock, not asyncio.sleep: a virtual clock counts this as waiting time,
                # and cancellation (barge-in) interrupts it at once.
                await clock.sleep(self.config.delay_ms / 1000)
            yield word if i == 0 else " " + word


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content.strip().rstrip(".!?").strip()
    return ""


@hookimpl
def register_providers(register: Register) -> None:
    register(EchoLLM)


async def _now(arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
    return ToolResult({"utc": datetime.now(UTC).strftime("%H:%M")})


CLOCK = Tool("example.clock", "The current time (UTC, hours and minutes).", _now)


@hookimpl
def register_tools(register: Any) -> None:
    register(CLOCK)
