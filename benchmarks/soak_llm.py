"""The soak's language model: a fixed reply streamed word by word after fixed delays, keeping
nothing between requests.

Why not ``scripted-llm`` from :mod:`voiceflow.testing.fakes`: one prepared provider instance
serves every call of a process, and that fake records every request and every ``warm`` it is
given (its tests read them back), so over thousands of calls it grows by every call's context,
which a soak would report as the server leaking. This one holds only its config, so whatever
memory the soak sees grow is the serving process's own.

Loaded by ``voiceflow serve --plugin soak_llm`` with ``benchmarks/`` on ``PYTHONPATH``
(benchmarks/soak.py does that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from pydantic import Field

from voiceflow.clock import current_clock
from voiceflow.config.base import ProviderConfig
from voiceflow.frames import Message
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import LLMProvider


class SoakLLMConfig(ProviderConfig):
    provider: Literal["soak-llm"] = "soak-llm"
    reply: str = Field(min_length=1, description="What the model answers, every time.")
    first_token_delay: float = Field(0.2, ge=0, le=60, description="Seconds from the request to the first word.")
    token_delay: float = Field(0.005, ge=0, le=60, description="Seconds between words.")


class SoakLLM(LLMProvider[SoakLLMConfig]):
    """Answers every request with :attr:`SoakLLMConfig.reply` at a model-like pace."""

    name = "soak-llm"
    config_model = SoakLLMConfig

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        clock = current_clock()
        await clock.sleep(self.config.first_token_delay)
        for index, word in enumerate(self.config.reply.split()):
            if index:
                await clock.sleep(self.config.token_delay)
            yield word if index == 0 else " " + word


@hookimpl
def register_providers(register: Any) -> None:
    register(SoakLLM)
