"""``voiceflow serve``: one uvicorn, many agents, many calls, and a drain that lets them finish.

The order of events is what makes deploys invisible to callers:

1. Listen first, then load the models: ``/healthz`` answers at once and ``/readyz`` says
   "not yet" until every agent is prepared, so an orchestrator neither kills a slow starter nor
   sends it calls too early; a call that arrives anyway is refused as ``starting``.
2. On a drain request (SIGTERM) stop admitting calls and turn ``/readyz`` false, but keep the
   port open: calls in progress go on over their sockets, and probes can see the drain.
3. Per agent: wait up to ``drain.grace`` for its calls to end; then the rest finish their
   sentence and hear ``drain.goodbye``; after ``drain.goodbye_timeout`` what is left is cut.
4. Only when no call is left does uvicorn shut down (it would otherwise close every socket).

uvicorn's own signal handling is switched off: signals are the caller's business
(:class:`ServeControl`), so tests can drive a drain without signals and the CLI can map a second
signal to "stop at once".
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
import uvicorn

from voiceflow.config.compose import AgentConfig
from voiceflow.metrics.calls import CallObserver
from voiceflow.metrics.setup import TracingUnavailable, open_tracing, prometheus_metrics
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import ProviderKind
from voiceflow.redaction import Redactor, redact, using_redactor
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import CallRunner, StopRequest, prepare
from voiceflow.runtime.session import CallResult
from voiceflow.serving.access import check_bind
from voiceflow.serving.api import ServedTransport
from voiceflow.serving.app import ServedAgent, build_app
from voiceflow.serving.host import AgentHost, ServerState
from voiceflow.serving.memory import FullCollector, HeapTrimmer, settle_after_start
from voiceflow.tasks import create_task_group

log = structlog.get_logger("voiceflow.serve")

DRAIN_REASON = "server draining"
SHUTDOWN_TIMEOUT = 5
"""Seconds uvicorn waits for connections after every call has ended (they close right away)."""


GIL_SWITCH_INTERVAL = 0.0005
"""Seconds; see :func:`quick_gil_handoff`."""


@contextlib.contextmanager
def quick_gil_handoff(seconds: float | None) -> Iterator[None]:
    """Let a thread that waits for the GIL have it after ``seconds`` (``sys.setswitchinterval``),
    restored on exit. Why: the VAD scores every call's windows in a worker thread, which drops the
    GIL inside onnxruntime and must take it back to hand the results over. The event-loop thread
    of a busy server is almost always running, so with Python's 5 ms interval each batch waited up
    to 5 ms for the GIL, twice, and VAD decisions fell behind. Measured with 200 calls of the
    side-by-side benchmark: the VAD's offset p95 92-180 ms in every run at 5 ms, mostly 1-25 ms
    at 0.5 ms; CPU per call 3 % more (docs/deployment.md, "The serving process")."""
    if seconds is None:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class ServingError(Exception):
    """The agents cannot be served as asked (one line, for the command line)."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    traces: str | None = None
    """OpenTelemetry exporter for per-call spans (``otlp``, ``console``); None: no traces."""
    settle_gc: bool = True
    """Freeze the garbage collector's view of the loaded process and collect less often
    (:func:`voiceflow.serving.memory.settle_after_start`)."""
    collect_every: float | None = 120.0
    """Seconds between full passes of the cyclic collector
    (:class:`~voiceflow.serving.memory.FullCollector`); None: when CPython's thresholds say."""
    trim_heap_every: float | None = 30.0
    """Seconds between ``malloc_trim`` calls (:class:`~voiceflow.serving.memory.HeapTrimmer`); None: never."""
    gil_switch_interval: float | None = GIL_SWITCH_INTERVAL
    """While serving, how long a thread may keep the GIL once another asks for it
    (:func:`quick_gil_handoff`); None: Python's own setting (5 ms)."""


class ServeControl:
    """Tells a running :func:`serve` to drain (finish calls, then exit) or to stop at once."""

    def __init__(self) -> None:
        self._drain, self._now = StopRequest(), StopRequest()

    @property
    def reason(self) -> str:
        """Why it is stopping ("" while it is not)."""
        return self._drain.reason if self._drain.is_set else ""

    def drain(self, reason: str = DRAIN_REASON) -> None:
        self._drain.set(reason)

    def stop_now(self, reason: str = "stopped") -> None:
        self._drain.set(reason)
        self._now.set(reason)

    @property
    def stopped_now(self) -> bool:
        return self._now.is_set

    async def wait_drain(self) -> None:
        await self._drain.wait()

    async def wait_stop_now(self) -> None:
        await self._now.wait()


Listening = Callable[[str, list[tuple[ServedAgent, list[str]]]], None]
"""Told the base URL and each agent's URLs once the port answers."""


async def serve(
    agents: list[AgentConfig],
    registry: PluginRegistry,
    options: ServeOptions,
    control: ServeControl,
    *,
    on_listening: Listening | None = None,
    on_call_done: Callable[[CallResult], None] | None = None,
    pool: ProviderPool | None = None,
    observers: Sequence[CallObserver] = (),
) -> None:
    """Serve ``agents`` until ``control`` says stop; raise :class:`ServingError` if they cannot
    be served as asked. ``pool`` lets an embedding application (or a test) share prepared
    providers; by default the process gets its own, closed at the end. ``observers`` hear of
    every call besides the process's own metrics and ``options.traces``."""
    check_bind_or_fail(options)
    _check_agents(agents, registry)
    try:
        tracing = open_tracing(options.traces)
    except TracingUnavailable as exc:
        raise ServingError(str(exc)) from None
    state = ServerState(options.token)
    state.loading = {agent.name for agent in agents}
    owned = pool is None
    pool = pool or ProviderPool(registry)
    metrics = prometheus_metrics(state, pool, lambda: [agent.host for agent in served])
    watchers = [*observers, *tracing.observers, *([metrics] if metrics is not None else [])]
    try:
        served = [
            ServedAgent(
                AgentHost(agent, CallRunner(agent, pool, on_call_done=on_call_done), state, watchers),
                await pool.get(ProviderKind.TRANSPORT, agent.transport),  # type: ignore[arg-type]
            )
            for agent in agents
        ]
        app = build_app(served, state, metrics.app if metrics is not None else None)
        server = _Server(_uvicorn_config(app, agents))
        with _bound(options) as sock, _stopped_if_abandoned(server, served), \
                quick_gil_handoff(options.gil_switch_interval):
            async with create_task_group() as tg:
                tg.start_soon(_run_uvicorn, server, sock)
                probing = anyio.CancelScope()
                tg.start_soon(_until_cancelled, probing, state.lag.run)
                trimming, collecting = anyio.CancelScope(), anyio.CancelScope()
                while not server.started:
                    await anyio.sleep(0.01)
                host, port = sock.getsockname()[:2]
                base = f"http://{host}:{port}"
                log.info("listening", url=base, loop=_loop_kind(), gil_switch_interval=sys.getswitchinterval())
                if on_listening is not None:
                    on_listening(base, [(a, a.transport.urls(base + a.path)) for a in served])
                loading = anyio.CancelScope()
                tg.start_soon(_prepare_all, agents, pool, state, loading, options.settle_gc)
                if options.collect_every is not None:
                    tg.start_soon(_until_cancelled, collecting, FullCollector(options.collect_every, on_pause=state.lag.held).run)
                if options.trim_heap_every is not None:
                    tg.start_soon(_until_cancelled, trimming, HeapTrimmer(options.trim_heap_every).run)
                await control.wait_drain()
                loading.cancel()  # a drain while models still load: stop loading them
                await _drain(served, state, control)
                server.should_exit = True
                server.force_exit = control.stopped_now
                probing.cancel()
                trimming.cancel()
                collecting.cancel()
    finally:
        tracing.close()
        if owned:
            with anyio.CancelScope(shield=True):
                await pool.aclose()


def _loop_kind() -> str:
    """Which event loop runs the calls (uvloop or asyncio's own), for the startup log."""
    try:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]
    except RuntimeError:  # not asyncio (anyio on trio)
        return "other"


async def _until_cancelled(scope: anyio.CancelScope, run: Callable[[], Awaitable[None]]) -> None:
    """A housekeeping loop (the lag probe, the collector, the heap trimmer) that the drain stops."""
    with scope:
        await run()


def check_bind_or_fail(options: ServeOptions) -> None:
    from voiceflow.serving.access import BindRefused

    try:
        check_bind(options.host, options.token)
    except BindRefused as exc:
        raise ServingError(str(exc)) from None


def _check_agents(agents: list[AgentConfig], registry: PluginRegistry) -> None:
    names = [agent.name for agent in agents]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ServingError(f"two agent files are both named {', '.join(twice)}: each agent needs its own name "
                           "(its URL is /agents/<name>)")
    served = sorted(info.name for info in registry.providers(ProviderKind.TRANSPORT)
                    if issubclass(info.cls, ServedTransport))
    for agent in agents:
        provider = agent.transport.provider
        if not issubclass(registry.get(ProviderKind.TRANSPORT, provider).cls, ServedTransport):
            raise ServingError(
                f"{agent.name}: transport {provider!r} does not take calls over the network; "
                f"set transport.provider to one that does ({', '.join(served) or 'none is installed'}) "
                "or pass --transport"
            )


async def _prepare_all(
    agents: list[AgentConfig], pool: ProviderPool, state: ServerState, scope: anyio.CancelScope, settle_gc: bool
) -> None:
    with scope:
        for agent in agents:
            with using_redactor(Redactor.for_config(agent)):
                problems = await prepare(agent, pool)
            for problem in problems:
                log.warning("provider not ready", agent=agent.name, problem=problem)
            if settle_gc and len(state.loading) == 1:  # the last agent: everything is loaded
                settle_after_start()
            state.loading.discard(agent.name)
            log.info("agent ready", agent=agent.name)


async def _drain(served: list[ServedAgent], state: ServerState, control: ServeControl) -> None:
    """Stop admitting, let calls finish (bounded per agent), end the rest politely or at once."""
    state.draining = True
    runners = [agent.host.runner for agent in served]
    log.info("draining", reason=control.reason, calls=sum(runner.live for runner in runners))

    async def at_once() -> None:
        await control.wait_stop_now()
        for runner in runners:
            runner.cut_all(control.reason)

    async with create_task_group() as tg:
        tg.start_soon(at_once)
        async with create_task_group() as agents:
            for agent in served:
                agents.start_soon(_drain_agent, agent.host, control.reason)
        tg.cancel_scope.cancel()
    log.info("drained")


async def _drain_agent(host: AgentHost, reason: str) -> None:
    runner, drain = host.runner, host.runner.agent.serving.drain
    with anyio.move_on_after(drain.grace):
        await runner.wait_idle()
    if runner.live:
        log.info("grace over: saying goodbye", agent=host.agent_name, calls=runner.live)
        runner.farewell(reason, drain.goodbye)
        with anyio.move_on_after(drain.goodbye_timeout):
            await runner.wait_idle()
    if runner.live:
        log.warning("cutting calls that did not end", agent=host.agent_name, calls=runner.live)
        runner.cut_all(reason)
    await runner.wait_idle()


@contextlib.contextmanager
def _stopped_if_abandoned(server: _Server, served: list[ServedAgent]) -> Iterator[None]:
    """If serving is cancelled or fails (not drained), end the calls and close the sockets
    rather than leave uvicorn's connection tasks running on the loop."""
    try:
        yield
    except BaseException:
        for agent in served:
            agent.host.runner.cut_all("server stopped")
        server.should_exit = server.force_exit = True
        for listener in getattr(server, "servers", []):
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        raise


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: :class:`ServeControl` decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _run_uvicorn(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process on a startup failure
        raise ServingError(f"the HTTP server could not start (status {exc.code})") from None


def _uvicorn_config(app: Any, agents: list[AgentConfig]) -> uvicorn.Config:
    biggest = max(agent.serving.max_message_bytes for agent in agents)
    return uvicorn.Config(
        app,
        http="h11",
        ws="websockets-sansio",
        lifespan="off",
        log_config=None,
        access_log=False,  # query strings may carry the access token
        ws_max_size=2 * biggest,  # the transport refuses above its agent's limit, politely; this stops floods
        ws_per_message_deflate=False,  # PCM barely compresses: deflating every 20 ms frame only costs CPU
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
    )


@contextlib.contextmanager
def _bound(options: ServeOptions) -> Iterator[socket.socket]:
    """Bind before anything else can fail late: a port in use is a one-line error."""
    try:
        infos = socket.getaddrinfo(options.host, options.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise ServingError(f"cannot listen on {options.host}:{options.port}: {redact(exc.strerror or str(exc))}") from None
    try:
        yield sock
    finally:
        sock.close()
