"""Serving an agent: prepare its providers once, then run a session for every call.

One process serves many calls on one event loop; each call is its own task group with its own
clock, and nothing one call does can end another: a session that fails is logged and reported as
a failed :class:`CallResult`, never raised into the transport that serves its siblings.

Stopping (Ctrl-C, SIGTERM) is two steps: every live call is asked to hang up (its timeline and
recording are kept), and whatever has not finished after ``grace`` seconds is cancelled. Either
way each call's result, complete or partial, reaches ``on_call_done``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import structlog

from voiceflow.clock import open_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import CallTransport, ProviderKind, TransportProvider
from voiceflow.redaction import Redactor, redact, using_redactor
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.session import CallResult, Session

log = structlog.get_logger("voiceflow.runner")

STAGE_KINDS = (
    ("vad", ProviderKind.VAD),
    ("stt", ProviderKind.STT),
    ("llm", ProviderKind.LLM),
    ("tts", ProviderKind.TTS),
)


async def prepare(agent: AgentConfig, pool: ProviderPool) -> list[str]:
    """Load every provider of every stage before the first call, so no caller waits for a cold
    start. Returns one line per entry that could not be prepared (``stt[0] whisper: …``).

    Nothing is raised: a chain with a working fallback serves calls anyway, the failed entries
    are retried after their back-off, and a stage with nothing ready is told to the caller
    (:class:`~voiceflow.runtime.session.Session`).
    """
    problems: list[str] = []
    for field_name, kind in STAGE_KINDS:
        for index, config in enumerate(getattr(agent, field_name)):
            try:
                await pool.get(kind, config)
            except Exception as exc:  # noqa: BLE001 - reported, and the chain falls back
                problem = redact(f"{field_name}[{index}] {config.provider}: {type(exc).__name__}: {exc}")
                problems.append(problem)
                if pool.first_telling(kind, config):
                    log.error("provider not ready", problem=problem)
    return problems


class StopRequest:
    """Asks a running :func:`serve_agent` to end its calls: set once to hang up gracefully."""

    def __init__(self, grace: float = 1.0) -> None:
        self.grace = grace
        self.reason = "stopped"
        self._event = anyio.Event()

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


async def serve_agent(
    agent: AgentConfig,
    registry: PluginRegistry,
    *,
    on_call_done: Callable[[CallResult], None] | None = None,
    pool: ProviderPool | None = None,
    stop: StopRequest | None = None,
) -> list[CallResult]:
    """Run ``agent`` on its transport until the transport stops serving (or ``stop`` is set and
    its grace has passed); return the calls' results."""
    pool = pool or ProviderPool(registry)
    results: list[CallResult] = []
    live: set[Session] = set()

    def deliver(result: CallResult) -> None:
        results.append(result)
        if on_call_done is not None:
            try:
                on_call_done(result)
            except Exception as exc:  # noqa: BLE001 - reporting one call must not end the others
                log.error("could not report a finished call", call_id=result.call_id,
                          error=redact(f"{type(exc).__name__}: {exc}"))

    async def run_session(call: CallTransport) -> None:
        kind = agent.session.clock if agent.session.clock != "auto" else call.clock
        async with open_clock(kind) as clock:
            session = Session(agent, pool, call, clock)
            if stop is not None and stop.is_set:
                session.request_hang_up(stop.reason)
            live.add(session)
            try:
                result = await session.run()
            except anyio.get_cancelled_exc_class():
                deliver(session.result(f"cut off: {stop.reason if stop else 'cancelled'}"))
                raise
            except Exception as exc:  # noqa: BLE001 - one broken call never takes down another
                root = _root(exc)
                error = redact(f"{type(root).__name__}: {root}")
                log.error("call failed", call_id=session.call_id, error=error)
                result = session.result(f"failed: {error}")
            finally:
                live.discard(session)
        deliver(result)

    async def watch_stop(stop: StopRequest, scope: anyio.CancelScope) -> None:
        await stop.wait()
        for session in list(live):
            session.request_hang_up(stop.reason)
        await anyio.sleep(stop.grace)
        scope.cancel()

    with using_redactor(Redactor.for_config(agent)):
        async with anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(watch_stop, stop, tg.cancel_scope)
            await prepare(agent, pool)
            transport: TransportProvider[Any] = await pool.get(ProviderKind.TRANSPORT, agent.transport)  # type: ignore[assignment]
            await transport.serve(run_session)
            tg.cancel_scope.cancel()
    return results


def _root(exc: BaseException) -> BaseException:
    """A task group wraps a call's failure in an ExceptionGroup; report the failure itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
