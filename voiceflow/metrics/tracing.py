"""OpenTelemetry spans of served calls (the ``otel`` extra): one span per call, one per turn inside
it, and one per stage inside each turn, each stage with its time to first byte.

Spans are written from the call's timeline, not by instrumenting the hot path: a turn's stages
run in several tasks and are cancelled by barge-in at any point, and the timeline already stamps
every step exactly once, on the session's clock, with the transport's own times for what the
caller said and heard. So the turn and stage spans are created when the turn ends, with their
real start and end times (the session clock mapped onto the wall clock at the call's start), and
the call span is open for as long as the call. Nothing here runs per audio frame.

What a span carries: agent, call id, turn kind and outcome, the providers that served each stage,
fallbacks (already redacted), mouth-to-ear and TTFBs in milliseconds, and each timeline mark as
an event on the turn span. Never what the caller or the agent said: trace backends are seldom
guarded like call recordings are.

Only the OpenTelemetry API is used here; which SDK, exporter and sampler is the caller's choice
(:mod:`voiceflow.metrics.setup` builds one from ``--traces``; tests hand in an in-memory one).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from voiceflow.metrics.calls import STAGES, call_outcome, turn_outcome
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.runtime.session import CallResult, Session

TRACER_NAME = "voiceflow"
FAILED_CALLS = ("failed", "unavailable")


class CallTracer:
    """A :class:`~voiceflow.metrics.calls.CallObserver` that writes each call as a trace."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._tracer = provider.get_tracer(TRACER_NAME)

    def call_started(self, agent: str, session: Session) -> CallSpans:
        return CallSpans(self._tracer, agent, session)

    def refused(self, agent: str, reason: str) -> None:
        """Refusals are counted by the metrics; a trace of a call that never started says nothing."""


class CallSpans:
    """The spans of one call: its own, open until it ends, and each turn's, written as it ends."""

    def __init__(self, tracer: trace.Tracer, agent: str, session: Session) -> None:
        self._tracer = tracer
        self._clock = session.clock
        # The session clock (monotonic, per call) onto epoch nanoseconds, fixed once per call.
        self._wall_origin = time.time_ns() - round(session.clock.now() * 1e9)
        self.span = tracer.start_span(
            "voiceflow.call", kind=SpanKind.SERVER, start_time=self._wall(session.timeline.origin),
            attributes={"voiceflow.agent": agent, "voiceflow.call.id": session.call_id},
        )
        self._context = trace.set_span_in_context(self.span)

    def _wall(self, t: float) -> int:
        return self._wall_origin + round(t * 1e9)

    def turn_ended(self, turn: TurnTimeline) -> None:
        marks = turn.marks
        now = self._clock.now()
        start = min(marks.values(), default=now)
        end = max(marks.values(), default=now)
        span = self._tracer.start_span(
            "voiceflow.turn", context=self._context, start_time=self._wall(start), attributes=_turn_attributes(turn))
        for name, t in sorted(marks.items(), key=lambda item: item[1]):
            span.add_event(name, timestamp=self._wall(t))
        if turn.outcome == "failed":
            span.set_status(Status(StatusCode.ERROR, turn.failure or "the reply failed"))
        inside = trace.set_span_in_context(span)
        for stage in STAGES:
            interval = stage.interval(turn)
            if interval is None:
                continue
            attributes: dict[str, Any] = {"voiceflow.stage": stage.name}
            if (provider := turn.providers.get(stage.name)) is not None:
                attributes["voiceflow.provider"] = provider
            if (ttfb := stage.ttfb(turn)) is not None:
                attributes["voiceflow.stage.ttfb_ms"] = _ms(ttfb)
            child = self._tracer.start_span(
                f"voiceflow.{stage.name}", context=inside, start_time=self._wall(interval[0]), attributes=attributes)
            child.end(end_time=self._wall(interval[1]))
        span.end(end_time=self._wall(end))

    def call_ended(self, result: CallResult) -> None:
        outcome = call_outcome(result.ended_because)
        self.span.set_attributes({
            "voiceflow.call.outcome": outcome,
            "voiceflow.call.ended_because": result.ended_because,
            "voiceflow.call.turns": len(result.timeline.turns),
        })
        if outcome in FAILED_CALLS:
            self.span.set_status(Status(StatusCode.ERROR, result.ended_because))
        self.span.end(end_time=time.time_ns())  # the call's clock has closed by now


def _turn_attributes(turn: TurnTimeline) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "voiceflow.turn.index": turn.index,
        "voiceflow.turn.kind": turn.kind,
        "voiceflow.turn.outcome": turn_outcome(turn),
        "voiceflow.turn.overlaps": len(turn.overlaps),
    }
    if (m2e := turn.mouth_to_ear) is not None:
        attributes["voiceflow.turn.mouth_to_ear_ms"] = _ms(m2e)
    if (endpointing := turn.span("endpointing")) is not None:
        attributes["voiceflow.turn.endpointing_ms"] = _ms(endpointing)
    if turn.fallbacks:
        attributes["voiceflow.turn.fallbacks"] = list(turn.fallbacks)
    for stage, provider in turn.providers.items():
        attributes[f"voiceflow.provider.{stage}"] = provider
    return attributes


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
