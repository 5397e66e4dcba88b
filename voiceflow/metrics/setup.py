"""What ``voiceflow serve`` turns on: Prometheus metrics whenever their extra is installed, and
OpenTelemetry traces only when asked (``--traces`` / ``VOICEFLOW_TRACES``).

Metrics cost a few dictionary look-ups per turn and answer only when scraped, so they are on
by default. Traces are off unless configured: they need somewhere to go (a collector), and
sending every call's spans to nowhere would only cost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from voiceflow.metrics.calls import CallObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from voiceflow.metrics.prometheus import ServeMetrics
    from voiceflow.runtime.pool import ProviderPool
    from voiceflow.serving.host import AgentHost, ServerState

log = structlog.get_logger("voiceflow.observe")

TRACES_ENV = "VOICEFLOW_TRACES"
EXPORTERS = ("otlp", "console")
"""``otlp``: OTLP over HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables;
``console``: each span as JSON on stderr (to see what would be sent)."""
DEFAULT_SERVICE = "voiceflow"


class TracingUnavailable(Exception):
    """Traces were asked for but cannot be exported (an unknown exporter, the extra missing)."""


def prometheus_metrics(
    state: ServerState, pool: ProviderPool, hosts: Callable[[], Sequence[AgentHost]]
) -> ServeMetrics | None:
    """The process's metrics, or None (logged once) without the ``metrics`` extra."""
    try:
        from voiceflow.metrics.prometheus import ServeMetrics
    except ImportError:
        log.info("metrics off: prometheus-client is not installed (pip install 'voiceflow[metrics]')")
        return None
    return ServeMetrics(state, pool, hosts)


@dataclass
class Tracing:
    """The tracers to observe calls with, and how to flush them at exit."""

    observers: list[CallObserver] = field(default_factory=list)
    _provider: Any = None

    def close(self) -> None:
        """Export what is still batched, then stop (blocks up to the exporter's own timeout)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None


def open_tracing(exporter: str | None) -> Tracing:
    """Tracing as configured: nothing for None or ``""``; else an SDK tracer provider exporting
    through ``exporter`` in a background thread (the event loop never waits on a collector).
    Raises :class:`TracingUnavailable` for an unknown exporter or without the ``otel`` extra."""
    if not exporter:
        return Tracing()
    if exporter not in EXPORTERS:
        raise TracingUnavailable(f"traces: unknown exporter {exporter!r} (use {' or '.join(EXPORTERS)})")
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        from voiceflow.metrics.tracing import CallTracer
    except ImportError:
        raise TracingUnavailable("traces need the otel extra: pip install 'voiceflow[otel]'") from None
    span_exporter: SpanExporter
    if exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingUnavailable("traces: the OTLP exporter is missing: pip install 'voiceflow[otel]'") from None
        span_exporter = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter(out=sys.stderr)
    provider = TracerProvider(resource=_resource())  # OTEL_TRACES_SAMPLER applies
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    log.info("traces on", exporter=exporter, endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
    return Tracing([CallTracer(provider)], provider)


def _resource() -> Resource:
    """The standard variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) win; without
    them the service is called ``voiceflow`` rather than ``unknown_service``."""
    from opentelemetry.sdk.resources import Resource

    found = Resource.create()
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": DEFAULT_SERVICE}))
    return found
