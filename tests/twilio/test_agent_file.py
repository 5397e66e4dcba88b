"""agents/phone.yaml: the example phone agent validates, names the variable it needs, and takes a
call (its model stages swapped for scripted ones, its transport block as shipped)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from twilio_harness import webhook

from harness import fake_registry
from voiceflow.config.errors import ConfigError
from voiceflow.config.loader import load_agent, parse_agent
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing.fake_twilio import FakeTwilio
from voiceflow.testing.served import served_agents
from voiceflow.testing.twilio_caller import TwilioCaller, agent_went_quiet
from voiceflow_twilio import TwilioConfig

PHONE = Path(__file__).resolve().parents[2] / "agents/phone.yaml"


def test_the_example_validates_with_the_auth_token_from_the_environment() -> None:
    agent = load_agent(PHONE, PluginRegistry(), env={"TWILIO_AUTH_TOKEN": "from-env"})
    assert isinstance(agent.transport, TwilioConfig)
    assert agent.transport.auth_token is not None and agent.transport.auth_token.get_secret_value() == "from-env"
    assert agent.transport.public_url is None  # ${VOICEFLOW_PUBLIC_URL:-} unset: from each request
    with_url = load_agent(PHONE, PluginRegistry(), env={"TWILIO_AUTH_TOKEN": "t",
                                                        "VOICEFLOW_PUBLIC_URL": "https://abc.example/"})
    assert isinstance(with_url.transport, TwilioConfig) and with_url.transport.public_url == "https://abc.example"


def test_without_the_auth_token_it_says_which_variable_to_set() -> None:
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN is not set"):
        load_agent(PHONE, PluginRegistry(), env={})
    with pytest.raises(ConfigError, match="auth_token: .*empty"):
        load_agent(PHONE, PluginRegistry(), env={"TWILIO_AUTH_TOKEN": " "})


@pytest.mark.anyio
async def test_the_example_takes_a_call(twilio: FakeTwilio) -> None:
    data = yaml.safe_load(PHONE.read_text())
    data |= {"vad": [{"provider": "energy"}], "stt": [{"provider": "scripted-stt"}],
             "llm": [{"provider": "scripted-llm"}], "tts": [{"provider": "tone"}]}
    data["transport"]["api_base"] = twilio.api_base
    registry = fake_registry()
    agent = parse_agent(yaml.safe_dump(data), str(PHONE), registry, env={"TWILIO_AUTH_TOKEN": twilio.auth_token})
    async with served_agents([agent], registry) as server:
        async with TwilioCaller(webhook(server, agent), twilio=twilio) as phone:
            await phone.wait_for(agent_went_quiet())
    greeting = "Hi, this is Joe. How can I help?"
    assert phone.report.seconds_heard() == pytest.approx(len(greeting) * 0.06, abs=0.1)
