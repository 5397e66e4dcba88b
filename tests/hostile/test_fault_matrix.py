"""Fault injection: stage × fault × {with, without fallback}, each beside a healthy sibling call.

In every cell the faulty call must end or go on cleanly (never hang), the caller must hear a line
whenever any voice can still speak, the timeline must say what failed, and a sibling call in the
same process, sharing the provider pool, must finish exactly as if nothing had happened.

Timeouts in the faulty entries are short (0.4 s) so a hang costs the test little wall time; the
deadlines themselves are what is being tested, on the same code path as the defaults.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import numpy as np
import pytest
import yaml

from harness import run_call
from voiceflow.config.compose import AgentConfig
from voiceflow.config.loader import parse_agent
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.session import CallResult
from voiceflow.testing import fakes, faults
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

FAST = {"prepare": 0.4, "connect": 0.4, "first_byte": 0.4, "idle": 0.4}
HEALTHY = {
    "vad": {"provider": "energy"},
    "stt": {"provider": "scripted-stt", "lines": ["what time is it"] * 3},
    "llm": {"provider": "scripted-llm", "replies": ["It is noon, more or less."]},
    "tts": {"provider": "tone"},
}
FAULTS_BY_STAGE = {
    "vad": ["refuse", "hang_prepare", "die_mid_stream", "garbage", "future"],
    "stt": [f for f in faults.FAULTS if f not in ("none", "spin", "endless", "future")],
    "llm": [f for f in faults.FAULTS if f not in ("none", "future")],
    "tts": [f for f in faults.FAULTS if f not in ("none", "future")],
}
CELLS = [
    pytest.param(stage, fault, fallback, id=f"{stage}-{fault}-{'fallback' if fallback else 'alone'}")
    for stage, stage_faults in FAULTS_BY_STAGE.items()
    for fault in stage_faults
    for fallback in (True, False)
]

# The faults after which no voice is left: the call can only end, and say why.
SPEECHLESS = {("tts", f) for f in ("refuse", "hang_prepare", "hang_open", "hang_first_byte", "garbage", "empty",
                                    "spin")}


def registry() -> PluginRegistry:
    return PluginRegistry(plugins=[fakes, faults])


def make_agent(reg: PluginRegistry, name: str, stage: str | None = None, fault: str = "none",
               fallback: bool = False) -> AgentConfig:
    data: dict[str, Any] = {
        "name": name,
        "prompt": {"system": "Be brief.", "greeting": {"text": "Hello there."}},
        "transport": {"provider": "file"},
        "turn_taking": {"endpointing": {"max_wait": 1.0}},
        **{key: [dict(entry)] for key, entry in HEALTHY.items()},
    }
    if stage is not None:
        faulty = {**HEALTHY[stage], "provider": f"faulty-{stage}", "fault": fault, "timeouts": FAST,
                  "after": 3 if stage != "stt" else 40}
        if stage != "vad":
            faulty["slow"] = 0.25  # within the 0.4 s deadline: slow, not failed
        data[stage] = [faulty, {**HEALTHY[stage], "timeouts": FAST}] if fallback else [faulty]
    return parse_agent(yaml.safe_dump(data), f"{name}.yaml", reg)


CALLER = silence(0.3) + speech_like(1.0) + silence(3.0) + speech_like(1.0, seed=3) + silence(4.0)


def heard_agent_audio(call: Any) -> bool:
    track = call._agent.samples[: call._agent.length]
    return bool(len(track)) and int(np.abs(track).max()) > 0


@pytest.mark.parametrize("stage,fault,fallback", CELLS)
async def test_fault_cell(stage: str, fault: str, fallback: bool) -> None:
    reg = registry()
    pool = ProviderPool(reg)
    faulty = make_agent(reg, "faulty", stage, fault, fallback)
    healthy = make_agent(reg, "healthy")
    outcomes: dict[str, tuple[CallResult, Any]] = {}

    async def one(label: str, agent: AgentConfig) -> None:
        result, call, _ = await run_call(agent, reg, CALLER, pool=pool)
        outcomes[label] = (result, call)

    started = time.monotonic()
    with anyio.fail_after(60):  # "nothing hangs": generous for a busy 2-core machine
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "faulty", faulty)
            tg.start_soon(one, "healthy", healthy)
    elapsed = time.monotonic() - started

    # The sibling call is untouched.
    sibling, _ = outcomes["healthy"]
    replies = [t for t in sibling.timeline.turns if t.kind == "reply"]
    assert sibling.ended_because == "end of input", sibling.timeline.as_dict()
    assert replies and all(t.outcome == "completed" for t in replies), sibling.timeline.as_dict()
    assert replies[0].heard_text == "It is noon, more or less."

    result, call = outcomes["faulty"]
    timeline = result.timeline.as_dict()
    assert result.ended_because, timeline
    assert not result.ended_because.startswith("failed"), timeline  # handled, never a crash
    if (stage, fault) in SPEECHLESS and not fallback:
        # Nothing can speak: the call ends at once and says why.
        assert result.ended_because.startswith("unavailable: ") or any(
            t["failure"] for t in timeline["turns"]
        ), timeline
        return
    assert heard_agent_audio(call), timeline
    heard = [t for t in result.timeline.turns if t.heard_text]
    assert heard, timeline  # the caller heard at least one whole or partial line
    if fault == "slow_first_byte" or (fallback and fault != "endless"):
        # A fallback (or a merely slow provider) keeps the call fully working. (An endless
        # reply is cut only at its limit, after the caller has long since talked over it:
        # tests/hostile/test_runaway.py has those.)
        assert any(t.kind == "reply" and t.outcome == "completed" for t in result.timeline.turns), timeline
    assert elapsed < 60


async def test_a_provider_that_failed_to_prepare_is_tried_again_after_its_back_off() -> None:
    reg = registry()
    pool = ProviderPool(reg, backoff=0.2)
    config = make_agent(reg, "x", "tts", "refuse").tts[0]
    with pytest.raises(Exception, match="refused"):
        await pool.get(faults.FaultyTTS.kind, config)
    with pytest.raises(Exception, match="next try in"):
        await pool.get(faults.FaultyTTS.kind, config)  # within the back-off: not retried
    await anyio.sleep(0.25)
    with pytest.raises(Exception, match="refused"):
        await pool.get(faults.FaultyTTS.kind, config)  # tried again, and failed again
