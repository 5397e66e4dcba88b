"""Prometheus metrics of one serving process, scraped at ``/metrics`` (the ``metrics`` extra).

Two kinds of figures, gathered two ways:

* **What is true now** (live calls and each agent's limit, readiness, drain, circuit breakers)
  is read when Prometheus scrapes, from the objects that already hold it (the agents' hosts, the
  process's state, the provider pool). Nothing has to be kept in step, so a count can never drift
  from the admission counter it reports, and the HPA scales on exactly what ``max_sessions`` caps.
* **What happened** (calls started and ended, turns, latencies, interruptions, fallbacks,
  errors) is counted as it happens, from the moments :mod:`voiceflow.metrics.calls` reports: the
  call's start, each turn's end (with its timeline), the call's end (with its result).

Every metric lives in this object's own :class:`~prometheus_client.CollectorRegistry`, never in
the library's process-wide default one: two servers in one process (tests do this) count their
own calls, and nothing leaks from one test to the next.

Latency histograms use buckets chosen for voice, 50 ms to 5 s: a turn that feels instant is
under ~300 ms of stage time, a conversational mouth-to-ear is 0.5–1 s, and past 2–3 s callers
start repeating themselves, so the resolution is where those lines are crossed.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from voiceflow.metrics.calls import STAGES, call_outcome, fallback_stage, turn_outcome
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.providers import ProviderKind
from voiceflow.runtime.breaker import CircuitState
from voiceflow.runtime.session import CallResult, Session
from voiceflow.serving.api import ASGIApp

if TYPE_CHECKING:
    from voiceflow.runtime.pool import ProviderPool
    from voiceflow.serving.host import AgentHost, ServerState

LATENCY_BUCKETS = (
    0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9,
    1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0,
)
"""Seconds: fine from 50 ms to 1 s, where stage budgets and mouth-to-ear targets sit, coarse to 5 s."""
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
"""Seconds a call lasts: with the call rate, what sizes concurrency (calls at once = rate × length)."""
BREAKER_KINDS = (ProviderKind.STT, ProviderKind.LLM, ProviderKind.TTS)
"""The stages whose chains consult circuit breakers."""


class ServeMetrics:
    """The metrics of one ``voiceflow serve`` process; a :class:`~voiceflow.metrics.calls.CallObserver`.

    ``hosts`` is asked at every scrape for the agents served (their live calls and limits).
    """

    def __init__(self, state: ServerState, pool: ProviderPool, hosts: Callable[[], Sequence[AgentHost]]) -> None:
        self.registry = CollectorRegistry()
        counter, histogram = _in(self.registry)
        self.calls_started = counter("voiceflow_calls_started", "Calls admitted and started.", ["agent"])
        self.calls_ended = counter(
            "voiceflow_calls_ended", "Calls ended, by how: caller_hung_up, agent_hung_up, drained, "
            "cut_off, failed, unavailable, end_of_input, other.", ["agent", "outcome"])
        self.calls_refused = counter(
            "voiceflow_calls_refused", "Calls not admitted: busy (max_sessions), draining, starting.",
            ["agent", "reason"])
        self.call_seconds = histogram(
            "voiceflow_call_duration_seconds", "How long calls last.", ["agent"], DURATION_BUCKETS)
        self.turns = counter("voiceflow_turns", "Agent turns ended, by kind and outcome.", ["agent", "kind", "outcome"])
        self.mouth_to_ear = histogram(
            "voiceflow_mouth_to_ear_seconds",
            "From the caller's last voiced sample to the first agent sample they heard, per turn.",
            ["agent"], LATENCY_BUCKETS)
        self.ttfb = histogram(
            "voiceflow_stage_ttfb_seconds", "Time to first byte of each stage (stt, llm, tts), per turn.",
            ["agent", "stage"], LATENCY_BUCKETS)
        self.endpointing = histogram(
            "voiceflow_endpointing_seconds", "From the end of the caller's speech to the turn judged over.",
            ["agent"], LATENCY_BUCKETS)
        self.interruptions = counter(
            "voiceflow_interruptions", "Agent turns the caller interrupted (barge-in).", ["agent"])
        self.overlaps = counter(
            "voiceflow_overlaps", "Caller speech over the agent that did not interrupt it "
            "(backchannels, echo, noise).", ["agent"])
        self.fallbacks = counter(
            "voiceflow_fallbacks", "A provider failed and its chain moved on, by stage and the provider "
            "that failed.", ["agent", "stage", "provider"])
        self.errors = counter(
            "voiceflow_errors", "Failures: call_failed (the call broke), unavailable (a stage could not "
            "start), turn_failed (a reply failed after every fallback).", ["agent", "kind"])
        self.registry.register(_LiveCollector(state, pool, hosts))
        self.app: ASGIApp = make_asgi_app(self.registry)
        """The ASGI app that answers a scrape."""

    # --- CallObserver ------------------------------------------------------------------------

    def call_started(self, agent: str, session: Session) -> _CallCounts:
        self.calls_started.labels(agent).inc()
        return _CallCounts(self, agent)

    def refused(self, agent: str, reason: str) -> None:
        self.calls_refused.labels(agent, reason).inc()


class _CallCounts:
    """Counts one call's turns and its end."""

    def __init__(self, metrics: ServeMetrics, agent: str) -> None:
        self._m = metrics
        self._agent = agent
        self._started = anyio.current_time()

    def turn_ended(self, turn: TurnTimeline) -> None:
        m, agent = self._m, self._agent
        outcome = turn_outcome(turn)
        m.turns.labels(agent, turn.kind, outcome).inc()
        if outcome == "interrupted":
            m.interruptions.labels(agent).inc()
        if outcome == "failed":
            m.errors.labels(agent, "turn_failed").inc()
        if turn.overlaps:
            m.overlaps.labels(agent).inc(len(turn.overlaps))
        for (failed_stage, provider), count in Tally(filter(None, map(fallback_stage, turn.fallbacks))).items():
            m.fallbacks.labels(agent, failed_stage, provider).inc(count)
        if (m2e := turn.mouth_to_ear) is not None:
            m.mouth_to_ear.labels(agent).observe(m2e)
        if (endpointing := turn.span("endpointing")) is not None:
            m.endpointing.labels(agent).observe(endpointing)
        for stage in STAGES:
            if (ttfb := stage.ttfb(turn)) is not None:
                m.ttfb.labels(agent, stage.name).observe(ttfb)

    def call_ended(self, result: CallResult) -> None:
        m, agent = self._m, self._agent
        outcome = call_outcome(result.ended_because)
        m.calls_ended.labels(agent, outcome).inc()
        if outcome in ("failed", "unavailable"):
            m.errors.labels(agent, "call_failed" if outcome == "failed" else "unavailable").inc()
        m.call_seconds.labels(agent).observe(anyio.current_time() - self._started)


class _LiveCollector(Collector):
    """Gauges read at scrape time from the objects that hold them."""

    def __init__(self, state: ServerState, pool: ProviderPool, hosts: Callable[[], Sequence[AgentHost]]) -> None:
        self._state, self._pool, self._hosts = state, pool, hosts

    def collect(self) -> Iterator[Metric]:
        live = GaugeMetricFamily("voiceflow_calls_live", "Calls in progress (places held), per agent: "
                                 "the HPA's metric.", labels=["agent"])
        limit = GaugeMetricFamily("voiceflow_calls_max", "serving.max_sessions of each agent.", labels=["agent"])
        for host in self._hosts():
            live.add_metric([host.agent_name], host.held)
            limit.add_metric([host.agent_name], host.limits.max_sessions)
        yield live
        yield limit
        learned = GaugeMetricFamily("voiceflow_calls_learned_limit", "Calls the process takes at most "
                                    "since it was overloaded (serving/call_ceiling.py); absent until then.")
        if self._state.ceiling.limit is not None:
            learned.add_metric([], self._state.ceiling.limit)
        yield learned
        yield GaugeMetricFamily("voiceflow_ready", "1 while calls are taken (/readyz 200).", value=int(self._state.ready))
        yield GaugeMetricFamily("voiceflow_draining", "1 once a drain (SIGTERM) has begun.",
                                value=int(self._state.draining))
        yield _circuits(self._pool)

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check ahead: these names are this module's own


def _circuits(pool: ProviderPool) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "voiceflow_circuits", "Prepared providers by circuit-breaker state (closed, open, half-open); "
        "open means every call skips it.", labels=["kind", "provider", "state"])
    states = Tally(
        (provider.kind.value, provider.name, pool.breaker(provider).state)
        for provider in pool.instances() if provider.kind in BREAKER_KINDS
    )
    for kind, name in sorted({(kind, name) for kind, name, _ in states}):
        for state in CircuitState:
            family.add_metric([kind, name, state.value], states[(kind, name, state)])
    return family


def _in(registry: CollectorRegistry) -> tuple[Callable[..., Counter], Callable[..., Histogram]]:
    """Constructors that register in ``registry`` (and never in the process-wide default one)."""

    def counter(name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=registry)

    def histogram(name: str, documentation: str, labels: list[str], buckets: Sequence[float]) -> Histogram:
        return Histogram(name, documentation, labels, registry=registry, buckets=buckets)

    return counter, histogram
