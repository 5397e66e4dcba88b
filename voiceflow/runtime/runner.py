"""Serving an agent: prepare its providers once, then run a session for every call.

One process serves many calls on one event loop; each call is its own task group with its own
clock, and nothing one call does can end another: a session that fails is logged and reported as
a failed :class:`CallResult`, never raised into the transport that serves its siblings.

:class:`CallRunner` is that per-call isolation for one agent, shared by ``voiceflow run``
(:func:`serve_agent`, a transport's own ``serve``) and ``voiceflow serve`` (the served
transports' hosts). It also gives whoever stops the process the three ways to end calls in
progress, gentlest first: :meth:`CallRunner.farewell` (let the agent finish its sentence, then
say a goodbye), :meth:`CallRunner.hang_up_all` (hang up at the next step) and
:meth:`CallRunner.cut_all` (cancel).

Stopping ``voiceflow run`` (Ctrl-C, SIGTERM) is two steps: every live call is asked to hang up
(its timeline and recording are kept), and whatever has not finished after ``grace`` seconds is
cancelled. Either way each call's result, complete or partial, reaches ``on_call_done``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from voiceflow.clock import Clock, open_clock, using_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import CallTransport, ProviderKind, TransportProvider, TTSProvider
from voiceflow.redaction import Redactor, redact, using_redactor
from voiceflow.runtime.chain import Chain
from voiceflow.runtime.pool import NoProviderReady, ProviderPool
from voiceflow.runtime.reply import PlaybackMark, Reply, ReplyPipeline
from voiceflow.runtime.session import CallResult, Session
from voiceflow.tasks import create_task_group

log = structlog.get_logger("voiceflow.runner")

STAGE_KINDS = (
    ("vad", ProviderKind.VAD),
    ("stt", ProviderKind.STT),
    ("llm", ProviderKind.LLM),
    ("tts", ProviderKind.TTS),
)

QUIET_POLL = 0.05
"""Seconds between looks at whether the agent has finished its sentence (a farewell's wait)."""

Companion = Callable[[Session], Coroutine[Any, Any, None]]
"""Runs beside a session for as long as its call lasts (relaying its events to the client)."""


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


@dataclass(eq=False)
class _LiveCall:
    session: Session
    scope: anyio.CancelScope
    farewell: anyio.Event = field(default_factory=anyio.Event)
    goodbye: str = ""
    reason: str = ""
    cut_reason: str = "cancelled"


class CallRunner:
    """Runs the calls of one agent, each isolated from the others, and ends them on request."""

    def __init__(
        self, agent: AgentConfig, pool: ProviderPool, *, on_call_done: Callable[[CallResult], None] | None = None
    ) -> None:
        self.agent = agent
        self.pool = pool
        self._on_call_done = on_call_done
        """Told of every finished call. The runner keeps no results itself: a serving process
        runs it for days, and every call's timeline kept (~15 KB) was memory that only grew."""
        self._live: list[_LiveCall] = []
        self._idle = anyio.Event()
        self._idle.set()
        self._stop_reason: str | None = None

    @property
    def live(self) -> int:
        """Calls in progress."""
        return len(self._live)

    async def wait_idle(self) -> None:
        """Return once no call is in progress."""
        while self._live:
            await self._idle.wait()

    async def run(self, call: CallTransport, *, companion: Companion | None = None) -> CallResult:
        """Run one call to its end and return its result; never raises for the call's sake (a
        cancellation from outside still propagates, after the partial result is delivered)."""
        kind = self.agent.session.clock if self.agent.session.clock != "auto" else call.clock
        with anyio.CancelScope() as scope:
            async with open_clock(kind) as clock:
                session = Session(self.agent, self.pool, call, clock)
                entry = _LiveCall(session, scope)
                if self._stop_reason is not None:
                    session.request_hang_up(self._stop_reason)
                self._live.append(entry)
                self._idle = anyio.Event()
                try:
                    result = await self._converse(entry, call, clock, companion)
                except anyio.get_cancelled_exc_class():
                    result = session.result(f"cut off: {entry.cut_reason}")
                    self._deliver(result)
                    raise
                except Exception as exc:  # noqa: BLE001 - one broken call never takes down another
                    root = _root(exc)
                    error = redact(f"{type(root).__name__}: {root}")
                    log.error("call failed", call_id=session.call_id, error=error)
                    result = session.result(f"failed: {error}")
                finally:
                    self._live.remove(entry)
                    if not self._live:
                        self._idle.set()
            self._deliver(result)
            return result
        return result  # cut by cut_all(): delivered above

    async def _converse(
        self, entry: _LiveCall, call: CallTransport, clock: Clock, companion: Companion | None
    ) -> CallResult:
        session = entry.session
        async with create_task_group() as tg:
            if companion is not None:
                tg.start_soon(companion, session)
            tg.start_soon(self._farewell_when_asked, entry)
            result = await session.run()
            if entry.goodbye and result.ended_because == entry.reason:
                await self._say_goodbye(session, call, clock, entry.goodbye)
            tg.cancel_scope.cancel()
        return result

    # --- ending calls from outside ---------------------------------------------------------

    def hang_up_all(self, reason: str) -> None:
        """Hang up every call at its next step; calls starting from now hang up at once."""
        self._stop_reason = reason
        for entry in list(self._live):
            entry.session.request_hang_up(reason)

    def farewell(self, reason: str, goodbye: str) -> None:
        """End every call politely: once the agent has finished what it is saying, it says
        ``goodbye`` and hangs up. New calls hang up at once."""
        self._stop_reason = reason
        for entry in list(self._live):
            if not entry.farewell.is_set():
                entry.goodbye, entry.reason = goodbye, reason
                entry.farewell.set()

    def cut_all(self, reason: str) -> None:
        """Cancel every call now (their partial results are still delivered)."""
        for entry in list(self._live):
            entry.cut_reason = reason
            entry.scope.cancel()

    async def _farewell_when_asked(self, entry: _LiveCall) -> None:
        await entry.farewell.wait()
        turns = entry.session.timeline.turns
        while turns and turns[-1].outcome == "pending":  # a reply is being written or said
            await anyio.sleep(QUIET_POLL)
        entry.session.request_hang_up(entry.reason)

    async def _say_goodbye(self, session: Session, call: CallTransport, clock: Clock, text: str) -> None:
        """Speak ``text`` to a call whose conversation is over, on its transport, as the last
        turn of its timeline. The transport's ``run`` is started again for the playout."""
        try:
            voices: list[Any] = await self.pool.chain(ProviderKind.TTS, self.agent.tts)
        except NoProviderReady as exc:
            log.warning("no voice for the goodbye", error=str(exc))
            return
        turn = session.timeline.new_turn("goodbye")
        reply = Reply(0, "goodbye", False, turn)
        tts = Chain[TTSProvider[Any]]("tts", voices, clock, breaker=self.pool.breaker)
        pipeline = ReplyPipeline(tts, call, clock, self.agent.chunking)
        call.on_played(_played)
        try:
            with using_clock(clock):
                async with create_task_group() as tg:
                    tg.start_soon(call.run)
                    await pipeline.speak(reply, _said(text))
                    tg.cancel_scope.cancel()
        except Exception as exc:  # noqa: BLE001 - the call is ending either way
            outcome, turn.failure = "failed", redact(f"{type(_root(exc)).__name__}: {_root(exc)}")
        else:
            outcome = "completed"
        turn.agent_text, turn.heard_text = text, reply.heard_text()
        turn.settle(outcome)

    def _deliver(self, result: CallResult) -> None:
        if self._on_call_done is not None:
            try:
                self._on_call_done(result)
            except Exception as exc:  # noqa: BLE001 - reporting one call must not end the others
                log.error("could not report a finished call", call_id=result.call_id,
                          error=redact(f"{type(exc).__name__}: {exc}"))


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

    def done(result: CallResult) -> None:
        results.append(result)
        if on_call_done is not None:
            on_call_done(result)

    runner = CallRunner(agent, pool, on_call_done=done)

    async def run_session(call: CallTransport) -> None:
        await runner.run(call)

    async def watch_stop(stop: StopRequest, scope: anyio.CancelScope) -> None:
        await stop.wait()
        runner.hang_up_all(stop.reason)
        await anyio.sleep(stop.grace)
        runner.cut_all(stop.reason)
        scope.cancel()

    with using_redactor(Redactor.for_config(agent)):
        async with create_task_group() as tg:
            if stop is not None:
                tg.start_soon(watch_stop, stop, tg.cancel_scope)
            await prepare(agent, pool)
            transport: TransportProvider[Any] = await pool.get(ProviderKind.TRANSPORT, agent.transport)  # type: ignore[assignment]
            await transport.serve(run_session)
            tg.cancel_scope.cancel()
    return results


async def _said(text: str) -> AsyncIterator[str]:
    yield text


def _played(mark: object, t: float) -> None:
    if isinstance(mark, PlaybackMark):
        mark.heard(t)


def _root(exc: BaseException) -> BaseException:
    """A task group wraps a call's failure in an ExceptionGroup; report the failure itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
