"""A plugin installed like any pip package (tests/example_plugin) is a first-class provider.

The example plugin must be installed in the test environment:
``pip install -e tests/example_plugin``.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import pytest

from voiceflow.clock import VirtualClock, using_clock
from voiceflow.config import ConfigError
from voiceflow.config.loader import load_agent
from voiceflow.frames import Message
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import LLMProvider, ProviderKind

try:
    importlib.metadata.distribution("voiceflow-example-plugin")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - environment problem
    pytest.skip(
        "the example plugin is not installed: pip install -e tests/example_plugin",
        allow_module_level=True,
    )

import voiceflow_example_plugin as example  # noqa: E402 - only once we know it is installed

AGENT = """\
name: echo-agent
prompt:
  system: You repeat what you hear.
llm:
{llm}
"""


@pytest.fixture(scope="module")
def full_registry() -> PluginRegistry:
    """Every installed plugin, found through entry points, as `voiceflow` itself would see them."""
    return PluginRegistry()


@pytest.fixture
def echo_only() -> PluginRegistry:
    """Only the example plugin, so the agent files below need no other stage."""
    return PluginRegistry(entry_points=False, plugins=[example])


def write_agent(tmp_path: Path, llm: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(AGENT.format(llm=llm), encoding="utf-8")
    return path


# --- discovery --------------------------------------------------------------------------------


def test_installed_plugin_is_discovered_through_its_entry_point(full_registry: PluginRegistry) -> None:
    info = full_registry.get(ProviderKind.LLM, "echo")
    assert info.cls is example.EchoLLM
    assert info.package == "voiceflow-example-plugin"
    assert info.version == "0.1.0"
    assert info.plugin == "example"
    assert not info.builtin
    assert ("llm", "echo") in [(i.kind.value, i.name) for i in full_registry.providers()]
    assert not [b for b in full_registry.broken if b.package == "voiceflow-example-plugin"]


def test_builtin_only_registry_leaves_third_party_plugins_out() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert ("llm", "echo") not in [(i.kind.value, i.name) for i in registry.providers()]
    assert all(info.builtin for info in registry.providers())


def test_summary_is_the_first_docstring_line() -> None:
    assert example.EchoLLM.summary().startswith("Echo LLM:")


def test_agent_schema_includes_the_plugin_config(full_registry: PluginRegistry) -> None:
    schema = full_registry.agent_model.model_json_schema()
    text = json.dumps(schema)
    echo = schema["$defs"]["EchoConfig"]
    assert echo["properties"]["provider"]["const"] == "echo"
    assert echo["properties"]["prefix"]["default"] == "You said"
    assert echo["properties"]["prefix"]["description"] == "Words said before the echoed text."
    assert "delay_ms" in echo["properties"]
    assert echo["additionalProperties"] is False
    assert "#/$defs/EchoConfig" in text


def test_builtin_only_schema_has_no_plugin_config() -> None:
    schema = PluginRegistry(builtin_only=True).agent_model.model_json_schema()
    assert "EchoConfig" not in json.dumps(schema)


# --- configuration errors inside the plugin's block ---------------------------------------------


def test_agent_file_with_the_plugin_loads(tmp_path: Path, echo_only: PluginRegistry) -> None:
    path = write_agent(tmp_path, "  - provider: echo\n    prefix: Heard\n    delay_ms: 5")
    agent = load_agent(path, echo_only, env={})
    (llm,) = agent.llm
    assert isinstance(llm, example.EchoConfig)
    assert (llm.prefix, llm.delay_ms) == ("Heard", 5)


def test_misspelt_plugin_field_points_at_the_key(tmp_path: Path, echo_only: PluginRegistry) -> None:
    path = write_agent(tmp_path, "  - {provider: echo, prefx: hi}")
    with pytest.raises(ConfigError) as caught:
        load_agent(path, echo_only, env={})
    message = str(caught.value)
    # "  - {provider: echo, " is 21 characters, so `prefx` starts in column 22 of line 5.
    assert f"{path}:5:22: llm[0].prefx:" in message
    assert "did you mean 'prefix'" in message
    (issue,) = caught.value.issues
    assert (issue.filename, issue.line, issue.column) == (str(path), 5, 22)
    assert issue.path == ("llm", 0, "prefx")


def test_misspelt_provider_name_suggests_the_plugin(tmp_path: Path, echo_only: PluginRegistry) -> None:
    path = write_agent(tmp_path, "  - provider: ecko")
    with pytest.raises(ConfigError) as caught:
        load_agent(path, echo_only, env={})
    message = str(caught.value)
    assert f"{path}:5:15: llm[0].provider:" in message
    assert "did you mean 'echo'" in message
    assert "installed: echo" in message


def test_plugin_field_types_are_checked(tmp_path: Path, echo_only: PluginRegistry) -> None:
    path = write_agent(tmp_path, "  - provider: echo\n    delay_ms: soon")
    with pytest.raises(ConfigError, match=r"llm\[0\]\.delay_ms: .*valid integer.*got 'soon'"):
        load_agent(path, echo_only, env={})


# --- the provider itself ----------------------------------------------------------------------


async def collect(llm: LLMProvider[example.EchoConfig], messages: list[Message]) -> list[str]:
    return [delta async for delta in llm.stream(messages)]


CONVERSATION = [
    Message("system", "You repeat what you hear."),
    Message("user", "Good morning"),
    Message("assistant", "You said: Good morning."),
    Message("user", "What is the capital of France?"),
]


@pytest.mark.anyio
async def test_echo_streams_the_reply_word_by_word() -> None:
    llm = example.EchoLLM(example.EchoConfig(provider="echo"))
    await llm.prepare()
    deltas = await collect(llm, CONVERSATION)
    assert deltas == ["You", " said:", " What", " is", " the", " capital", " of", " France."]
    assert "".join(deltas) == "You said: What is the capital of France."
    await llm.aclose()


@pytest.mark.anyio
async def test_echo_uses_its_prefix_and_the_last_user_message() -> None:
    llm = example.EchoLLM(example.EchoConfig(provider="echo", prefix="I heard"))
    deltas = await collect(llm, [Message("user", "first"), Message("user", "second!")])
    assert "".join(deltas) == "I heard: second."


@pytest.mark.anyio
async def test_echo_delay_runs_on_the_session_clock() -> None:
    llm = example.EchoLLM(example.EchoConfig(provider="echo", delay_ms=500))
    started = time.monotonic()
    async with VirtualClock() as clock:
        with using_clock(clock):
            t0 = clock.now()
            deltas = await collect(llm, [Message("user", "one two three")])
            elapsed = clock.now() - t0
    assert "".join(deltas) == "You said: one two three."
    # Four gaps of 0.5 s pass in virtual time; the real run skips them.
    assert elapsed == pytest.approx(2.0, abs=0.1)
    assert time.monotonic() - started < 1.5


def test_a_plugin_tool_is_listed_and_usable_in_an_agent_file(full_registry: PluginRegistry, tmp_path: Path) -> None:
    info = full_registry.tool("example.clock")
    assert info.tool is example.CLOCK and info.package == "voiceflow-example-plugin"
    import subprocess
    import sys

    cli = Path(sys.executable).with_name("voiceflow")
    listed = subprocess.run([str(cli), "plugins"], capture_output=True, text=True, check=True)
    assert any(line.split()[:3] == ["tool", "example.clock", "voiceflow-example-plugin"]
               for line in listed.stdout.splitlines()), listed.stdout
    agent = write_agent(tmp_path, "  - provider: echo")
    agent.write_text(agent.read_text() + "tools:\n  - function: example.clock\n")
    echo_and_clock = PluginRegistry(entry_points=False, plugins=[example])
    assert load_agent(agent, echo_and_clock, env={}).tools[0].tool_name == "example.clock"
