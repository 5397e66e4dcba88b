"""OpenTelemetry spans of served calls: one per call, one per turn inside it, one per stage inside
each turn with its time to first byte, all placed at the times the call's timeline recorded.
Collected with the SDK's in-memory exporter from real calls over the WebSocket transport, and
once through the OTLP/HTTP exporter into a collector on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from operate_calls import barge_in, question, ws_agent

from voiceflow.metrics.calls import STAGES, turn_outcome
from voiceflow.metrics.setup import TracingUnavailable, open_tracing
from voiceflow.metrics.tracing import CallTracer
from voiceflow.serving.server import ServeControl, ServeOptions, ServingError, serve
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import WsCaller

pytestmark = pytest.mark.anyio


def in_memory() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


async def test_each_call_is_a_trace_of_its_turns_and_their_stages_at_the_timeline_times() -> None:
    provider, exporter = in_memory()
    registry, agent = ws_agent()
    async with served_agents([agent], registry, observers=[CallTracer(provider)]) as server:
        await WsCaller(server.ws_url(agent.name), barge_in()).run()
        await WsCaller(server.ws_url(agent.name), question()).run()
        results = {result.call_id: result for result in server.results}
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.name == "voiceflow.call"]
    assert sorted(s.attributes["voiceflow.call.id"] for s in calls) == sorted(results)  # type: ignore[index]
    interrupted_seen = False
    for call in calls:
        attributes: Any = call.attributes
        result = results[attributes["voiceflow.call.id"]]
        assert attributes["voiceflow.agent"] == agent.name
        assert attributes["voiceflow.call.outcome"] == "caller_hung_up"
        assert attributes["voiceflow.call.turns"] == len(result.timeline.turns)
        assert call.parent is None and call.status.status_code is StatusCode.UNSET
        turn_spans = sorted(children(spans, call), key=lambda s: s.attributes["voiceflow.turn.index"])  # type: ignore[index]
        assert len(turn_spans) == len(result.timeline.turns)
        for span, turn in zip(turn_spans, result.timeline.turns, strict=True):
            assert span.name == "voiceflow.turn" and span.context.trace_id == call.context.trace_id  # type: ignore[union-attr]
            attrs: Any = span.attributes
            assert attrs["voiceflow.turn.kind"] == turn.kind
            assert attrs["voiceflow.turn.outcome"] == turn_outcome(turn)
            if turn.mouth_to_ear is not None:
                assert attrs["voiceflow.turn.mouth_to_ear_ms"] == round(turn.mouth_to_ear * 1000, 1)
            assert call.start_time <= span.start_time <= span.end_time <= call.end_time  # type: ignore[operator]
            # Every timeline mark is an event, at its own time relative to the turn's start.
            events = {event.name: event.timestamp for event in span.events}
            assert set(events) == set(turn.marks)
            first = min(turn.marks.values())
            for name, t in turn.marks.items():
                assert events[name] - span.start_time == pytest.approx(ns(t - first), abs=2)  # type: ignore[operator]
            stages = {s.name.removeprefix("voiceflow."): s for s in children(spans, span)}
            expected = {stage.name for stage in STAGES if stage.interval(turn) is not None}
            assert set(stages) == expected
            for stage in STAGES:
                if stage.name not in stages:
                    continue
                s = stages[stage.name]
                start, end = stage.interval(turn)  # type: ignore[misc]
                assert s.end_time - s.start_time == pytest.approx(ns(end - start), abs=2)  # type: ignore[operator]
                assert span.start_time <= s.start_time and s.end_time <= span.end_time  # type: ignore[operator]
                ttfb = stage.ttfb(turn)
                assert s.attributes.get("voiceflow.stage.ttfb_ms") == (  # type: ignore[union-attr]
                    None if ttfb is None else round(ttfb * 1000, 1))
            if turn.kind == "reply":
                assert {"endpointing", "stt", "llm", "tts", "playout"} <= set(stages)
                assert stages["llm"].attributes["voiceflow.provider"] == "scripted-llm"  # type: ignore[index]
                assert attrs["voiceflow.turn.fallbacks"]  # the primary LLM failed or was skipped
            if turn.outcome == "interrupted":
                interrupted_seen = True
                playout = stages["playout"]
                assert playout.end_time - span.start_time == pytest.approx(  # type: ignore[operator]
                    ns(turn.marks["interrupted"] - first), abs=2)
    assert interrupted_seen
    # What was said is never in a span.
    said = ["tell me everything", "stop please", "umbrella", "Hello there", "Sure."]
    for span in spans:
        values = [str(v) for v in (span.attributes or {}).values()]
        assert not any(words in value for words in said for value in values), (span.name, values)


async def test_traces_are_off_unless_asked_and_an_unknown_exporter_is_refused() -> None:
    assert open_tracing(None).observers == [] and open_tracing("").observers == []
    with pytest.raises(TracingUnavailable, match="zipkin"):
        open_tracing("zipkin")
    registry, agent = ws_agent()
    with pytest.raises(ServingError, match="unknown exporter 'zipkin'"):
        await serve([agent], registry, ServeOptions(port=0, traces="zipkin"), ServeControl())


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each export request it is sent."""

    received: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        (self.received if self.path == "/v1/traces" else []).append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ExportTraceServiceRequest]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


async def test_otlp_exports_over_http_to_the_configured_collector(collector: list[ExportTraceServiceRequest]) -> None:
    tracing = open_tracing("otlp")
    registry, agent = ws_agent()
    try:
        async with served_agents([agent], registry, observers=tracing.observers) as server:
            await WsCaller(server.ws_url(agent.name), question()).run()
    finally:
        tracing.close()  # flushes the batch
    spans = [(resource.resource, span) for request in collector for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    names = [span.name for _, span in spans]
    assert names.count("voiceflow.call") == 1 and names.count("voiceflow.turn") == 2
    assert {"voiceflow.llm", "voiceflow.tts", "voiceflow.stt"} <= set(names)
    service = {a.key: a.value.string_value for a in spans[0][0].attributes}["service.name"]
    assert service == "voiceflow"
