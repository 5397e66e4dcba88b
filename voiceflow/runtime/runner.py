"""Serving an agent: prepare its providers once, then run a session for every call.

One process serves many calls on one event loop; each call is its own task group with its own
clock, so a call that fails is logged and ends alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from voiceflow.clock import open_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import CallTransport, ProviderKind, TransportProvider
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.session import CallResult, Session

log = structlog.get_logger("voiceflow.runner")

STAGE_KINDS = (
    ("vad", ProviderKind.VAD),
    ("stt", ProviderKind.STT),
    ("llm", ProviderKind.LLM),
    ("tts", ProviderKind.TTS),
)


async def prepare(agent: AgentConfig, pool: ProviderPool) -> None:
    """Load every stage's models before the first call, so no caller waits for a cold start."""
    for field_name, kind in STAGE_KINDS:
        await pool.chain(kind, getattr(agent, field_name))


async def serve_agent(
    agent: AgentConfig,
    registry: PluginRegistry,
    *,
    on_call_done: Callable[[CallResult], None] | None = None,
    pool: ProviderPool | None = None,
) -> list[CallResult]:
    """Run ``agent`` on its transport until the transport stops serving; return finished calls."""
    pool = pool or ProviderPool(registry)
    results: list[CallResult] = []
    await prepare(agent, pool)
    transport: TransportProvider[Any] = await pool.get(ProviderKind.TRANSPORT, agent.transport)  # type: ignore[assignment]

    async def run_session(call: CallTransport) -> None:
        kind = agent.session.clock if agent.session.clock != "auto" else call.clock
        try:
            async with open_clock(kind) as clock:
                result = await Session(agent, pool, call, clock).run()
        except Exception:
            log.exception("call failed", call_id=call.call_id)
            raise
        results.append(result)
        if on_call_done is not None:
            on_call_done(result)

    await transport.serve(run_session)
    return results
