"""Every cloud provider × every way its service fails, through the real SDK against the fake
servers of :mod:`voiceflow.testing`, with a cheap scripted fallback behind it.

A cell is two calls at once in one process, sharing the provider pool: the *faulty* call's cloud
entry talks to a fake server that fails every request the cell's way; the *sibling*'s entry for
the same provider talks to a healthy server. In every cell the faulty call must keep talking (the
caller hears the reply, from the fallback where the cloud cannot serve it), end as a call does
(never ``failed: …``), name what failed and never quote the key (the fakes put it in every error);
the sibling must be served by its cloud provider exactly as if nothing had happened.

Only outcomes and orders are asserted, never wall-clock times: a hang costs its deadline, which is
short in the cells that hang and generous elsewhere, so a busy machine cannot turn a fault of
another kind into a timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import test_deepgram_calls as deepgram
import test_elevenlabs_calls as elevenlabs
import test_openai_llm as openai
from test_fault_matrix import CALLER, heard_agent_audio

from harness import fake_agent, fake_registry, run_call
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.session import CallResult
from voiceflow.testing import fake_deepgram, fake_elevenlabs, fake_openai

pytestmark = pytest.mark.anyio

ANSWER = "It is noon, more or less."
CLOUD_HEARD = "what is the time please"
"""What the fake Deepgram recognises (the scripted fallback hears ``what time is it``)."""
FALLBACK_HEARD = "what time is it"
HANG = {"connect": 0.4, "first_byte": 0.4, "idle": 0.4, "prepare": 10.0}
"""Deadlines of a faulty entry that hangs: a hang costs this, so it is short."""
PATIENT = {"connect": 5.0, "first_byte": 5.0, "idle": 5.0, "prepare": 10.0}
"""Deadlines everywhere else: far above any delay of the fakes, even on a busy machine."""
SLOW = 0.3
"""A slow first byte: late, but well within ``PATIENT``."""
FALLBACKS = {  # instant: the real time a cell takes is the cloud provider's
    "stt": {"provider": "scripted-stt", "lines": [FALLBACK_HEARD] * 8, "delay": 0, "timeouts": PATIENT},
    "llm": {"provider": "scripted-llm", "replies": [ANSWER], "first_token_delay": 0, "token_delay": 0,
            "timeouts": PATIENT},
    "tts": {"provider": "tone", "first_audio_delay": 0, "timeouts": PATIENT},
}


@dataclass(frozen=True)
class Cloud:
    """One cloud provider (in one of its transports): its fake server and its agent entry."""

    id: str
    stage: str
    provider: str
    server: Callable[[], Any]
    """Makes its fake server (not started yet)."""
    entry: Callable[..., dict[str, Any]]
    """The chain entry for a server: ``entry(server, timeouts=…)``."""
    faults: dict[str, Any]
    key: str


def _deepgram_server() -> Any:
    return fake_deepgram.FakeDeepgram(utterances=[CLOUD_HEARD], api_key=deepgram.KEY)


def _openai_server() -> Any:
    return fake_openai.FakeOpenAI(replies=[ANSWER], api_key=openai.KEY)


def _elevenlabs_server() -> Any:
    return fake_elevenlabs.FakeElevenLabs(api_key=elevenlabs.KEY)


def _aura(transport: str) -> Callable[..., dict[str, Any]]:
    return lambda server, **fields: deepgram.aura_entry(server, transport=transport, **fields)


def _elevenlabs(transport: str) -> Callable[..., dict[str, Any]]:
    return lambda server, **fields: elevenlabs.entry(server, transport=transport, **fields)


DG, OA, XI = fake_deepgram.Fault, fake_openai.Fault, fake_elevenlabs.Fault
CLOUDS = [
    Cloud("deepgram", "stt", "deepgram", _deepgram_server, deepgram.stt_entry, {
        "refuse": DG("auth"),
        "hang": DG("hang"),  # the websocket upgrade is never answered
        "stall": DG("stall"),  # the stream opens, then not one message comes
        "slow_first_byte": DG("slow_first_byte", seconds=SLOW),
        "die_mid_stream": DG("disconnect", after=2),  # every socket, reopened ones too
        "garbage": DG("malformed", after=1),
    }, deepgram.KEY),
    *(Cloud(f"deepgram-aura-{transport}", "tts", "deepgram-aura", _deepgram_server, _aura(transport), {
        "refuse": DG("auth"),
        "hang": DG("hang"),  # websocket: the upgrade is never answered; REST: the request
        **({"stall": DG("stall")} if transport == "websocket" else {}),  # the socket opens, then silence
        "slow_first_byte": DG("slow_first_byte", seconds=SLOW),
        "die_mid_stream": DG("disconnect", after=2),
        "garbage": DG("malformed", after=2),
    }, deepgram.KEY) for transport in ("websocket", "rest")),
    Cloud("openai", "llm", "openai", _openai_server, openai.entry, {
        "refuse": OA("auth"),
        "hang": OA("hang"),
        "slow_first_byte": OA("slow_first_byte", seconds=SLOW),
        "die_mid_stream": OA("disconnect", after=2),
        "garbage": OA("malformed", after=2),
    }, openai.KEY),
    *(Cloud(f"elevenlabs-{transport}", "tts", "elevenlabs", _elevenlabs_server, _elevenlabs(transport), {
        "refuse": XI("auth"),
        "hang": XI("hang"),
        "slow_first_byte": XI("slow_first_byte", seconds=SLOW),
        "die_mid_stream": XI("disconnect", after=2),
        "garbage": XI("malformed", detail="json", after=2),
    }, elevenlabs.KEY) for transport in ("websocket", "http")),
]
CELLS = [pytest.param(cloud, fault, id=f"{cloud.id}-{fault}") for cloud in CLOUDS for fault in cloud.faults]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[Callable[[], Any], tuple[Any, Any]]]:
    """A faulty and a healthy server of each fake, for the whole matrix (a server takes 0.2 s to
    stop); each cell sets the faulty one's fault, and every cell has a pool of its own."""
    started: dict[Callable[[], Any], tuple[Any, Any]] = {}
    try:
        for make in dict.fromkeys(cloud.server for cloud in CLOUDS):
            started[make] = (make(), make())
            for server in started[make]:
                server.start()
        yield started
    finally:
        for pair in started.values():
            for server in pair:
                server.stop()


@contextmanager
def servers(fakes: dict[Callable[[], Any], tuple[Any, Any]], cloud: Cloud, fault: str) -> Iterator[tuple[Any, Any]]:
    faulty, healthy = fakes[cloud.server]
    faulty.fault = cloud.faults[fault]  # every connection or request, from now on
    try:
        yield faulty, healthy
    finally:
        faulty.fault = None


def replies(result: CallResult) -> list[Any]:
    return [t for t in result.timeline.turns if t.kind == "reply"]


@pytest.mark.parametrize(("cloud", "fault"), CELLS)
async def test_cloud_fault_cell(fakes: dict[Callable[[], Any], tuple[Any, Any]], cloud: Cloud, fault: str) -> None:
    reg = fake_registry()  # the built-ins (the cloud plugins among them) and the scripted fakes
    pool = ProviderPool(reg)
    outcomes: dict[str, tuple[CallResult, Any]] = {}
    timeouts = HANG if fault in ("hang", "stall") else PATIENT

    async def one(label: str, entry: dict[str, Any]) -> None:
        # Every stage on its fallback (one instance for both calls: enough lines for both), the
        # cell's on the cloud provider first.
        stages = {stage: [fallback] for stage, fallback in FALLBACKS.items()}
        agent = fake_agent(reg, **{**stages, cloud.stage: [entry, FALLBACKS[cloud.stage]]})
        result, call, _ = await run_call(agent, reg, CALLER, pool=pool)
        outcomes[label] = (result, call)

    with servers(fakes, cloud, fault) as (faulty, healthy):
        try:
            with anyio.fail_after(60):  # "nothing hangs": generous for a busy 2-core machine
                async with anyio.create_task_group() as tg:
                    tg.start_soon(one, "faulty", cloud.entry(faulty, timeouts=timeouts))
                    tg.start_soon(one, "sibling", cloud.entry(healthy, timeouts=PATIENT))
        finally:
            await pool.aclose()

    # The sibling, on the same provider's healthy server, never noticed.
    sibling, _ = outcomes["sibling"]
    assert sibling.ended_because == "end of input", sibling.timeline.as_dict()
    answered = replies(sibling)
    assert len(answered) == 2 and all(t.outcome == "completed" and t.heard_text == ANSWER for t in answered), \
        sibling.timeline.as_dict()
    assert not any(t.fallbacks or t.failure for t in sibling.timeline.turns), sibling.timeline.as_dict()
    if cloud.stage == "stt":
        assert [t.user_text for t in answered] == [CLOUD_HEARD] * 2
    else:
        assert all(t.providers.get(cloud.stage) == cloud.provider for t in answered), sibling.timeline.as_dict()

    # The faulty call kept talking, and says what failed.
    result, call = outcomes["faulty"]
    timeline = result.timeline.as_dict()
    assert result.ended_because == "end of input", timeline  # handled: never "failed: …"
    assert cloud.key not in json.dumps(timeline) and cloud.key[:12] not in json.dumps(timeline)
    assert heard_agent_audio(call), timeline
    completed = [t for t in replies(result) if t.outcome == "completed"]
    assert completed and all(t.heard_text for t in completed), timeline
    last = completed[-1]
    assert last.heard_text.endswith(ANSWER), timeline  # (an LLM that took over may repeat the start)
    if fault == "slow_first_byte":  # the cloud provider served the call, only later
        assert len(completed) == 2 and not any(t.fallbacks or t.failure for t in result.timeline.turns), timeline
        if cloud.stage == "stt":
            assert last.user_text == CLOUD_HEARD, timeline
        else:
            assert last.providers.get(cloud.stage) == cloud.provider, timeline
    elif cloud.stage == "stt":
        # The recogniser failed as it opened (both questions go to the fallback), or mid-call:
        # then the question in flight costs a turn, and the next is heard by the fallback.
        assert last.user_text == FALLBACK_HEARD, timeline
        failures = [t.failure for t in result.timeline.turns if t.failure]
        assert all(f.startswith("stt/deepgram: ") for f in failures), timeline
    else:
        named = [f for t in result.timeline.turns for f in t.fallbacks]
        assert any(f.startswith(f"{cloud.stage}/{cloud.provider}: ") for f in named), timeline
