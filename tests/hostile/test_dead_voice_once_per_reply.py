"""A dead primary voice costs its first_byte deadline once per reply, not once per clause: once a
voice failed in a reply, the rest of the reply goes to the one that took over (the circuit
breaker then spares later replies and calls)."""

from __future__ import annotations

import pytest

from harness import fake_agent, run_call
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing import fakes, faults
from voiceflow.testing.fakes import silence

pytestmark = pytest.mark.anyio

CLAUSES = "Here is the first thing. Here is the second thing. Here is the third thing. And the fourth."


@pytest.mark.parametrize("fault", ["hang_first_byte", "refuse_mid_reply"])
async def test_a_dead_voice_is_waited_out_once_per_reply(fault: str) -> None:
    reg = PluginRegistry(plugins=[fakes, faults])
    dead = {"provider": "faulty-tts", "fault": "hang_first_byte" if fault == "hang_first_byte" else "die_mid_stream",
            "after": 0, "timeouts": {"first_byte": 0.4, "idle": 0.4},
            "circuit": {"failures": 1000, "reset_after": 3600}}  # the breaker stays out of it
    agent = fake_agent(reg, prompt={"system": "x", "greeting": {"text": CLAUSES}},
                       tts=[dead, {"provider": "tone"}])
    result, _, _ = await run_call(agent, reg, silence(12.0), start="immediately", lead_in=0)
    greeting = result.timeline.turns[0]
    assert greeting.outcome == "completed", result.timeline.as_dict()
    assert greeting.heard_text == CLAUSES
    assert len([f for f in greeting.fallbacks if f.startswith("tts/faulty-tts")]) == 1, greeting.fallbacks
