"""Per-turn timelines and latency figures, and what a serving process reports from them:
Prometheus metrics (``prometheus``, the ``metrics`` extra) and OpenTelemetry traces (``tracing``,
the ``otel`` extra), both fed by the call observers of ``calls``."""
