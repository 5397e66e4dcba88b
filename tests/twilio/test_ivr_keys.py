"""An agent on a phone line pressing a key at an IVR menu, end to end on loopback: the keys go
in band (Media Streams has no outbound DTMF message), as μ-law made once at 8 kHz, and the fake
phone's Goertzel receiver hears exactly the key the menu announced, in the μ-law that arrived."""

from __future__ import annotations

import pytest
from twilio_harness import finished_calls, phone_agent, webhook

from voiceflow.dtmf import tones_mulaw
from voiceflow.g711 import MULAW_RATE, mulaw_decode
from voiceflow.testing.dtmf_detector import detected
from voiceflow.testing.fake_twilio import FakeTwilio
from voiceflow.testing.fakes import speech_like
from voiceflow.testing.served import served_agents
from voiceflow.testing.twilio_caller import TwilioCaller, agent_went_quiet

pytestmark = pytest.mark.anyio

MENU = "Press one for sales, press two for technical support, or press three for billing."


async def test_the_agent_presses_the_announced_key_in_band_on_the_phone_line(twilio: FakeTwilio) -> None:
    registry, agent = phone_agent(
        twilio,
        prompt={"system": "You are a test.", "greeting": None},
        stt=[{"provider": "scripted-stt", "lines": [MENU]}],
        unhappy_paths={"ivr": {"choose": ["billing"]}},
    )
    async with served_agents([agent], registry) as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.say(speech_like(1.5))
            await phone.wait_for(lambda p: p.report.seconds_heard() > 0)
            await phone.wait_for(agent_went_quiet())
        [result] = await finished_calls(server)
    report = phone.report
    assert {len(payload) for payload in report.payloads} == {160}
    assert detected(mulaw_decode(b"".join(report.payloads)), MULAW_RATE) == "3"
    assert detected(report.heard(), MULAW_RATE) == "3"
    assert b"".join(report.payloads).startswith(tones_mulaw("3"))  # encoded once, sent untouched
    [keys] = result.timeline.turns
    assert keys.kind == "keys" and keys.outcome == "completed" and keys.ivr is not None
    assert (keys.ivr.keys, keys.ivr.chosen, keys.ivr.sent) == ("3", "billing", "in band")
