"""Prometheus metrics of a serving process, scraped at /metrics over HTTP from the real serving
stack (uvicorn on loopback, the WebSocket transport, admission, drain) after real calls with
scripted providers. Every figure is checked against what the calls' own timelines say."""

from __future__ import annotations

from collections import Counter

import anyio
import prometheus_client
import pytest
from operate_calls import Scrape, barge_in, fetch, question, scrape, ws_agent

from voiceflow.metrics.calls import STAGES, fallback_stage, turn_outcome
from voiceflow.metrics.prometheus import LATENCY_BUCKETS, ServeMetrics
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.session import CallResult
from voiceflow.serving.host import ServerState
from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import WsCaller

pytestmark = pytest.mark.anyio


def turns(results: list[CallResult]) -> list:  # type: ignore[type-arg]
    return [turn for result in results for turn in result.timeline.turns]


async def test_calls_turns_latencies_interruptions_fallbacks_and_circuits_are_counted() -> None:
    registry, agent = ws_agent(serving={"max_sessions": 3})
    async with served_agents([agent], registry) as server:
        before = await scrape(server.base_url)
        assert before.value("voiceflow_calls_live", agent=agent.name) == 0
        assert before.value("voiceflow_calls_max", agent=agent.name) == 3
        assert before.value("voiceflow_ready") == 1 and before.value("voiceflow_draining") == 0

        url = server.ws_url(agent.name)
        during: list[Scrape] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(WsCaller(url, barge_in()).run)
            with anyio.fail_after(20):
                while not during or during[-1].value("voiceflow_calls_live", agent=agent.name) != 1:
                    during.append(await scrape(server.base_url))
        await WsCaller(url, question()).run()
        after = await scrape(server.base_url)
        results = list(server.results)

    a = {"agent": agent.name}
    assert after.value("voiceflow_calls_live", **a) == 0
    assert after.value("voiceflow_calls_started_total", **a) == 2
    assert after.value("voiceflow_calls_ended_total", **a, outcome="caller_hung_up") == 2
    assert after.value("voiceflow_call_duration_seconds_count", **a) == 2

    # Turns by kind and outcome, exactly as the timelines have them.
    expected = Counter((turn.kind, turn_outcome(turn)) for turn in turns(results))
    assert expected[("reply", "interrupted")] == 1
    for (kind, outcome), count in expected.items():
        assert after.value("voiceflow_turns_total", **a, kind=kind, outcome=outcome) == count
    assert after.value("voiceflow_turns_total", **a) == sum(expected.values())
    assert after.value("voiceflow_interruptions_total", **a) == 1

    # Latency histograms: one observation per turn that has the span, the same seconds.
    m2e = [t.mouth_to_ear for t in turns(results) if t.mouth_to_ear is not None]
    assert len(m2e) >= 2
    assert after.value("voiceflow_mouth_to_ear_seconds_count", **a) == len(m2e)
    assert after.value("voiceflow_mouth_to_ear_seconds_sum", **a) == pytest.approx(sum(m2e))
    for stage in STAGES:
        ttfbs = [v for t in turns(results) if (v := stage.ttfb(t)) is not None]
        assert after.value("voiceflow_stage_ttfb_seconds_count", **a, stage=stage.name) == len(ttfbs)
        assert after.value("voiceflow_stage_ttfb_seconds_sum", **a, stage=stage.name) == pytest.approx(sum(ttfbs))
    assert after.value("voiceflow_stage_ttfb_seconds_count", **a, stage="llm") >= 2
    endpointing = [v for t in turns(results) if (v := t.span("endpointing")) is not None]
    assert after.value("voiceflow_endpointing_seconds_count", **a) == len(endpointing) >= 2
    # Buckets are the voice ones, 50 ms to 5 s.
    les = {s.labels["le"] for s in after.samples if s.name == "voiceflow_mouth_to_ear_seconds_bucket"}
    assert les == {repr(float(b)) for b in LATENCY_BUCKETS} | {"+Inf"}

    # The failing primary LLM: each skip or failure is a fallback, and its circuit is open.
    fallbacks = Counter(found for t in turns(results) for entry in t.fallbacks if (found := fallback_stage(entry)))
    assert fallbacks[("llm", "scripted-llm")] >= 2
    for (stage, provider), count in fallbacks.items():
        assert after.value("voiceflow_fallbacks_total", **a, stage=stage, provider=provider) == count
    circuit = {"kind": "llm", "provider": "scripted-llm"}
    assert after.value("voiceflow_circuits", **circuit, state="open") == 1  # the failing one
    assert after.value("voiceflow_circuits", **circuit, state="closed") == 1  # the one that answers
    assert after.value("voiceflow_circuits", kind="tts", provider="tone", state="closed") == 1
    assert after.value("voiceflow_errors_total", **a) == 0


async def test_refusals_are_counted_by_reason_and_the_live_gauge_follows_admission() -> None:
    registry, agent = ws_agent(serving={"max_sessions": 1})
    release = anyio.Event()
    async with served_agents([agent], registry) as server:
        url = server.ws_url(agent.name)
        async with anyio.create_task_group() as tg:
            tg.start_soon(WsCaller(url, question(), hang_up_when=lambda _: release.is_set()).run)
            with anyio.fail_after(20):
                while (await scrape(server.base_url)).value("voiceflow_calls_live", agent=agent.name) != 1:
                    await anyio.sleep(0.02)
            refused = await WsCaller(url, [], hang_up_when=None).run()
            assert refused.error is not None and refused.error["code"] == "busy"
            release.set()
        metrics = await scrape(server.base_url)
    assert metrics.value("voiceflow_calls_refused_total", agent=agent.name, reason="busy") == 1
    assert metrics.value("voiceflow_calls_started_total", agent=agent.name) == 1
    assert metrics.value("voiceflow_calls_live", agent=agent.name) == 0


async def test_a_drain_shows_in_the_gauges_and_drained_calls_are_counted_as_such() -> None:
    registry, agent = ws_agent(serving={"drain": {"grace": 0.2, "goodbye": "Bye now.", "goodbye_timeout": 10}})
    # The process exits as soon as its last call has ended, within uvicorn's 0.1 s tick: a scrape
    # cannot be sure to land between the two. A second exposition told of the same calls (every
    # observer hears what the process's own metrics hear) keeps the final counts for after.
    witness = ServeMetrics(ServerState(), ProviderPool(registry), lambda: [])
    async with served_agents([agent], registry, observers=[witness]) as server:
        url = server.ws_url(agent.name)
        async with anyio.create_task_group() as tg:
            tg.start_soon(WsCaller(url, question(), hang_up_when=None).run)  # stays on the line
            with anyio.fail_after(20):
                while (await scrape(server.base_url)).value("voiceflow_calls_live", agent=agent.name) != 1:
                    await anyio.sleep(0.02)
            server.control.drain()
            with anyio.fail_after(20):
                draining = await scrape(server.base_url)
                while draining.value("voiceflow_draining") != 1:
                    draining = await scrape(server.base_url)
            assert draining.value("voiceflow_ready") == 0
    last = Scrape(prometheus_client.generate_latest(witness.registry).decode())
    assert last.value("voiceflow_calls_ended_total", agent=agent.name, outcome="drained") == 1
    assert last.value("voiceflow_turns_total", agent=agent.name, kind="goodbye", outcome="completed") == 1


async def test_metrics_are_behind_the_access_token_and_probes_are_not() -> None:
    registry, agent = ws_agent()
    token = "metrics-s3cret"
    async with served_agents([agent], registry, token=token) as server:
        status, _, body = await anyio.to_thread.run_sync(fetch, server.base_url + "/metrics")
        assert status == 401 and "unauthorized" in body
        status, _, _ = await anyio.to_thread.run_sync(fetch, server.base_url + "/metrics", "wrong")
        assert status == 401
        assert (await scrape(server.base_url, token)).has("voiceflow_calls_live")
        assert (await server.get("/healthz"))[0] == 200


async def test_each_server_counts_in_its_own_registry_never_the_process_default() -> None:
    registry, agent = ws_agent()
    async with served_agents([agent], registry) as one, served_agents([agent], registry) as two:
        await WsCaller(one.ws_url(agent.name), question()).run()
        first, second = await scrape(one.base_url), await scrape(two.base_url)
    assert first.value("voiceflow_calls_started_total") == 1
    assert second.value("voiceflow_calls_started_total") == 0
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "voiceflow_" not in default
