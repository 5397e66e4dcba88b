"""voiceflow.config: YAML with positions, ${ENV} interpolation, validation and its error messages.

Every test uses an in-process registry with one fake provider per stage (defined below), so the
results do not depend on which plugins happen to be installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, SecretStr

from voiceflow.config import ConfigError, ConfigIssue, ProviderConfig
from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import format_path
from voiceflow.config.loader import load_agent, parse_agent
from voiceflow.config.models import BargeIn, Endpointing, TurnTaking
from voiceflow.config.yaml_source import interpolate, load_yaml
from voiceflow.frames import Message, TTSAudio
from voiceflow.plugins import PluginRegistry, hookimpl
from voiceflow.plugins.hookspecs import Register
from voiceflow.providers import (
    LLMProvider,
    SessionRunner,
    STTProvider,
    STTStream,
    TransportProvider,
    TTSProvider,
    VADProvider,
    VADStream,
)

# --- a test plugin: one fake provider for every stage, two for the LLM (a discriminated union) ---


class FakeVADConfig(ProviderConfig):
    provider: Literal["fake_vad"]
    threshold: float = Field(0.5, ge=0, le=1, description="Speech probability threshold.")


class FakeSTTConfig(ProviderConfig):
    provider: Literal["fake_stt"]
    api_key: SecretStr = Field(description="The service key.")
    language: str = "en"


class FakeLLMConfig(ProviderConfig):
    provider: Literal["fake_llm"]
    model: str = "small"
    temperature: float = Field(0.7, ge=0, le=2)


class OtherLLMConfig(ProviderConfig):
    provider: Literal["other_llm"]
    max_tokens: int = 256


class FakeTTSConfig(ProviderConfig):
    provider: Literal["fake_tts"]
    voice: str = "alice"


class FakeFileConfig(ProviderConfig):
    provider: Literal["file"]
    input: str | None = None


class FakeVAD(VADProvider[FakeVADConfig]):
    """Fake VAD."""

    name = "fake_vad"
    config_model = FakeVADConfig

    def create_stream(self) -> VADStream:
        raise NotImplementedError


class FakeSTT(STTProvider[FakeSTTConfig]):
    """Fake STT."""

    name = "fake_stt"
    config_model = FakeSTTConfig

    async def open_stream(self) -> STTStream:
        raise NotImplementedError


class FakeLLM(LLMProvider[FakeLLMConfig]):
    """Fake LLM."""

    name = "fake_llm"
    config_model = FakeLLMConfig

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        yield "ok"


class OtherLLM(LLMProvider[OtherLLMConfig]):
    """Another fake LLM."""

    name = "other_llm"
    config_model = OtherLLMConfig

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        yield "ok"


class FakeTTS(TTSProvider[FakeTTSConfig]):
    """Fake TTS."""

    name = "fake_tts"
    config_model = FakeTTSConfig

    async def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        yield TTSAudio(b"", 16_000)


class FakeFileTransport(TransportProvider[FakeFileConfig]):
    """Fake file transport."""

    name = "file"
    config_model = FakeFileConfig

    async def serve(self, run_session: SessionRunner) -> None:
        raise NotImplementedError


class FakePlugin:
    @hookimpl
    def register_providers(self, register: Register) -> None:
        for cls in (FakeVAD, FakeSTT, FakeLLM, OtherLLM, FakeTTS):
            register(cls)

    @hookimpl
    def register_transports(self, register: Register) -> None:
        register(FakeFileTransport)


class LLMOnlyPlugin:
    @hookimpl
    def register_providers(self, register: Register) -> None:
        register(FakeLLM)


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return PluginRegistry(entry_points=False, plugins=[FakePlugin()])


SECRET = "sk-very-secret-0123456789"

VALID = """\
name: test-agent
prompt:
  system: You are helpful.
transport:
  provider: file
vad:
  - provider: fake_vad
stt:
  - provider: fake_stt
    api_key: ${STT_KEY}
llm:
  - provider: fake_llm
    temperature: 0.2
  - provider: other_llm
tts:
  - provider: fake_tts
"""


def parse(text: str, registry: PluginRegistry, env: dict[str, str] | None = None) -> AgentConfig:
    return parse_agent(text, "agent.yaml", registry, {"STT_KEY": SECRET} if env is None else env)


def error_of(text: str, registry: PluginRegistry, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text, registry, env)
    return caught.value


def only_issue(text: str, registry: PluginRegistry, env: dict[str, str] | None = None) -> ConfigIssue:
    error = error_of(text, registry, env)
    assert len(error.issues) == 1, str(error)
    return error.issues[0]


def replace(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- a valid file -------------------------------------------------------------------------------


def test_valid_agent_loads_into_typed_configs(registry: PluginRegistry) -> None:
    agent = parse_agent(VALID, "agent.yaml", registry, {"STT_KEY": SECRET})
    assert agent.name == "test-agent"
    assert isinstance(agent.transport, FakeFileConfig)
    assert [type(c) for c in agent.llm] == [FakeLLMConfig, OtherLLMConfig]  # chain order kept
    assert agent.llm[0].temperature == 0.2  # type: ignore[attr-defined]
    stt = agent.stt[0]
    assert isinstance(stt, FakeSTTConfig)
    assert stt.api_key.get_secret_value() == SECRET
    assert agent.stt[0].timeouts.first_byte == 4.0  # the common ProviderConfig defaults
    assert agent.turn_taking.endpointing.min_silence == 0.45  # core defaults


def test_load_agent_reads_a_file(tmp_path: Path, registry: PluginRegistry) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_agent(path, registry, env={"STT_KEY": "k"}).name == "test-agent"


def test_unreadable_file_is_a_config_error(tmp_path: Path, registry: PluginRegistry) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: .*cannot read"):
        load_agent(missing, registry, env={})


def test_load_agent_defaults_to_the_process_environment(
    tmp_path: Path, registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STT_KEY", "from-os-environ")
    path = tmp_path / "a.yaml"
    path.write_text(VALID, encoding="utf-8")
    agent = load_agent(path, registry)
    assert agent.stt[0].api_key.get_secret_value() == "from-os-environ"  # type: ignore[attr-defined]


# --- yaml_source: positions and interpolation ------------------------------------------------


def test_source_map_records_positions_of_keys_and_values() -> None:
    data, source = load_yaml("a:\n  b: [1, {c: x}]\n", "f.yaml", env={})
    assert data == {"a": {"b": [1, {"c": "x"}]}}
    assert source.position(("a", "b")) == (2, 6)
    assert source.position(("a", "b"), key=True) == (2, 3)
    assert source.position(("a", "b", 1, "c")) == (2, 14)
    assert source.position(("a", "b", 1, "c"), key=True) == (2, 11)
    # An unknown path falls back to the nearest known parent.
    assert source.position(("a", "b", 1, "missing")) == (2, 10)


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${NAME}", {"NAME": "Ada"}, "Ada"),
        ("Hello ${NAME}!", {"NAME": "Ada"}, "Hello Ada!"),
        ("${NAME:-nobody}", {}, "nobody"),
        ("${NAME:-nobody}", {"NAME": "Ada"}, "Ada"),
        ("${NAME:-}", {}, ""),
        ("${NAME:-}", {"NAME": ""}, ""),  # set but empty is still set
        ("costs $$5", {}, "costs $5"),
        ("$${NAME}", {"NAME": "Ada"}, "${NAME}"),  # an escaped reference stays literal
        ("$$$${NAME}", {"NAME": "Ada"}, "$${NAME}"),
        ("$$${NAME}", {"NAME": "Ada"}, "$Ada"),
        ("$5 and $NAME", {"NAME": "Ada"}, "$5 and $NAME"),  # only ${...} is a reference
        ("${A}${B:-b}", {"A": "a"}, "ab"),
        ("${URL:-http://x:1/}", {}, "http://x:1/"),
    ],
)
def test_interpolation(value: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(value, env, ("f.yaml", 1, 1, ("k",))) == expected


def test_interpolated_values_are_not_parsed_as_yaml() -> None:
    data, _ = load_yaml("a: ${V}\nb: '${N}'\n", "f.yaml", env={"V": "x: [1, #", "N": "12"})
    assert data == {"a": "x: [1, #", "b": "12"}


def test_only_string_values_are_interpolated_not_keys() -> None:
    data, _ = load_yaml("${K}: ${V}\nn: 5\n", "f.yaml", env={"K": "key", "V": "value"})
    assert data == {"${K}": "value", "n": 5}


def test_interpolated_number_is_validated_by_its_field(registry: PluginRegistry) -> None:
    text = replace("    temperature: 0.2", "    temperature: ${TEMP:-0.3}")
    agent = parse(text, registry, {"STT_KEY": "k", "TEMP": "1.5"})
    assert agent.llm[0].temperature == 1.5  # type: ignore[attr-defined]
    agent = parse(text, registry, {"STT_KEY": "k"})
    assert agent.llm[0].temperature == 0.3  # type: ignore[attr-defined]


def test_missing_environment_variable_points_at_the_value(registry: PluginRegistry) -> None:
    issue = only_issue(VALID, registry, env={})
    assert (issue.line, issue.column) == (line_of(VALID, "${STT_KEY}"), 14)
    assert issue.path == ("stt", 0, "api_key")
    assert "environment variable STT_KEY is not set" in issue.message
    assert "${STT_KEY:-default}" in issue.message
    assert str(issue).startswith(f"agent.yaml:{issue.line}:14: stt[0].api_key: ")


def test_missing_variable_inside_a_block_scalar_points_at_the_block(registry: PluginRegistry) -> None:
    text = replace("  system: You are helpful.", "  system: |\n    You are helpful.\n    Today is ${TODAY}.")
    issue = only_issue(text, registry)
    assert issue.path == ("prompt", "system")
    assert issue.line == 3
    assert "TODAY" in issue.message


# --- yaml_source: syntax errors ----------------------------------------------------------------


def test_duplicate_key_is_an_error_with_both_lines(registry: PluginRegistry) -> None:
    text = VALID + "name: again\n"
    issue = only_issue(text, registry)
    assert issue.path == ("name",)
    assert (issue.line, issue.column) == (len(VALID.splitlines()) + 1, 1)
    assert "duplicate key 'name' (first set at line 1)" in issue.message


def test_duplicate_nested_key(registry: PluginRegistry) -> None:
    text = replace("    temperature: 0.2", "    temperature: 0.2\n    temperature: 0.9")
    issue = only_issue(text, registry)
    assert issue.path == ("llm", 0, "temperature")
    assert issue.line == line_of(text, "temperature: 0.9")
    assert f"first set at line {line_of(text, 'temperature: 0.2')}" in issue.message


def test_duplicate_key_in_a_flow_mapping(registry: PluginRegistry) -> None:
    text = replace("  - provider: fake_tts", "  - {provider: fake_tts, voice: a, voice: b}")
    issue = only_issue(text, registry)
    assert issue.path == ("tts", 0, "voice")
    assert "duplicate key 'voice'" in issue.message


def test_invalid_yaml_reports_its_line(registry: PluginRegistry) -> None:
    text = replace("    temperature: 0.2", "    temperature: 0.2\n   bad indent: [")
    issue = only_issue(text, registry)
    assert issue.message.startswith("invalid YAML: ")
    assert issue.line is not None and issue.line >= line_of(text, "bad indent")
    assert str(issue).startswith(f"agent.yaml:{issue.line}:")


def test_unclosed_bracket_names_where_it_was_opened(registry: PluginRegistry) -> None:
    text = VALID + "description: [unclosed\n"
    issue = only_issue(text, registry)
    assert "invalid YAML" in issue.message
    assert f"(line {line_of(text, 'unclosed')})" in issue.message


def test_tab_indentation_is_invalid_yaml(registry: PluginRegistry) -> None:
    issue = only_issue("name: a\nprompt:\n\tsystem: x\n", registry)
    assert issue.message.startswith("invalid YAML")
    assert issue.line == 3


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/name:os.system",
        "!!python/object/apply:os.getcwd []",
        "!!python/object:collections.OrderedDict {}",
        "!mine x",
        "!!set {a, b}",
    ],
)
def test_unsafe_or_unknown_tags_are_config_errors(registry: PluginRegistry, tag: str) -> None:
    text = replace("name: test-agent", f"name: {tag}")
    issue = only_issue(text, registry)
    assert issue.path == ("name",)
    assert (issue.line, issue.column) == (1, 7)
    assert issue.message.startswith("invalid YAML value:")


def test_bad_merge_key_is_a_config_error(registry: PluginRegistry) -> None:
    issue = only_issue(replace("  - provider: fake_tts", "  - <<: 5\n    provider: fake_tts"), registry)
    assert issue.path == ("tts", 0)
    assert "merging" in issue.message


def test_anchors_and_merge_keys_work(registry: PluginRegistry) -> None:
    text = replace("  - provider: fake_tts", "  - &voice {provider: fake_tts, voice: bob}\n  - <<: *voice")
    agent = parse(text, registry)
    assert [t.voice for t in agent.tts] == ["bob", "bob"]  # type: ignore[attr-defined]


def test_a_written_key_overrides_a_merged_one(registry: PluginRegistry) -> None:
    text = replace(
        "  - provider: fake_tts",
        "  - &voice {provider: fake_tts, voice: bob}\n  - <<: *voice\n    voice: carol",
    )
    agent = parse(text, registry)
    assert [t.voice for t in agent.tts] == ["bob", "carol"]  # type: ignore[attr-defined]


def test_merge_does_not_hide_a_real_duplicate() -> None:
    text = "a: &a {x: 1}\nb:\n  <<: *a\n  y: 2\n  y: 3\n"
    with pytest.raises(ConfigError, match=r"f.yaml:5:3: b\.y: duplicate key 'y' \(first set at line 4\)"):
        load_yaml(text, "f.yaml", env={})


def test_keys_must_be_text(registry: PluginRegistry) -> None:
    issue = only_issue(replace("    temperature: 0.2", "    1: 0.2"), registry)
    assert issue.message == "keys must be text, got 1"
    assert issue.line == line_of(VALID, "temperature")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_file_must_be_a_mapping(registry: PluginRegistry, text: str) -> None:
    issue = only_issue(text, registry)
    assert "must be a mapping" in issue.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_says_so_and_lists_the_required_fields(registry: PluginRegistry, text: str) -> None:
    issue = only_issue(text, registry)
    assert issue.message.startswith("the file is empty")
    assert issue.message.endswith("needs at least: name, prompt, transport, vad, stt, llm, tts")


# --- validation errors ----------------------------------------------------------------------


def test_unknown_core_field_suggests_and_points_at_the_key(registry: PluginRegistry) -> None:
    text = VALID + "turn_takng:\n  barge_in: {enabled: false}\n"
    issue = only_issue(text, registry)
    assert issue.path == ("turn_takng",)
    assert (issue.line, issue.column) == (line_of(text, "turn_takng"), 1)
    assert "unknown field 'turn_takng' (did you mean 'turn_taking'?)" in issue.message
    assert "allowed here:" in issue.message and "unhappy_paths" in issue.message


def test_unknown_nested_core_field_reports_its_full_path(registry: PluginRegistry) -> None:
    text = VALID + "turn_taking:\n  states:\n    digits:\n      endpointing: {min_silnce: 1.2}\n"
    issue = only_issue(text, registry)
    assert issue.path == ("turn_taking", "states", "digits", "endpointing", "min_silnce")
    assert (issue.line, issue.column) == (line_of(text, "min_silnce"), 21)
    assert "did you mean 'min_silence'" in issue.message
    assert ("(allowed here: adaptive, max_delivery_gap, max_wait, min_silence, min_speech, preemptive, "
            "transcript_rules, turn_model)") in issue.message
    assert str(issue).startswith(
        f"agent.yaml:{issue.line}:21: turn_taking.states.digits.endpointing.min_silnce: "
    )


def test_unknown_field_inside_a_union_member(registry: PluginRegistry) -> None:
    """llm has two providers, so pydantic's location includes the union tag; the path must not."""
    text = replace("    temperature: 0.2", "    tempreature: 0.2")
    issue = only_issue(text, registry)
    assert issue.path == ("llm", 0, "tempreature")
    assert "did you mean 'temperature'" in issue.message
    assert "(allowed here: circuit, model, provider, temperature, timeouts)" in issue.message
    assert (issue.line, issue.column) == (line_of(text, "tempreature"), 5)


def test_unknown_field_in_the_common_timeouts(registry: PluginRegistry) -> None:
    text = replace("  - provider: other_llm", "  - provider: other_llm\n    timeouts: {first_bite: 2}")
    issue = only_issue(text, registry)
    assert issue.path == ("llm", 1, "timeouts", "first_bite")
    assert "did you mean 'first_byte'" in issue.message


def test_wrong_type_says_what_was_expected_and_what_was_given(registry: PluginRegistry) -> None:
    text = replace("    temperature: 0.2", "    temperature: warm")
    issue = only_issue(text, registry)
    assert issue.path == ("llm", 0, "temperature")
    assert "valid number" in issue.message
    assert "got 'warm'" in issue.message
    assert (issue.line, issue.column) == (line_of(text, "warm"), 18)


def test_out_of_range_value(registry: PluginRegistry) -> None:
    text = VALID + "turn_taking:\n  endpointing:\n    min_silence: 9\n"
    issue = only_issue(text, registry)
    assert issue.path == ("turn_taking", "endpointing", "min_silence")
    assert "less than or equal to 5" in issue.message and "got 9" in issue.message


def test_wrong_literal_lists_the_choices(registry: PluginRegistry) -> None:
    issue = only_issue(VALID + "session: {clock: fast}\n", registry)
    assert issue.path == ("session", "clock")
    assert "'auto', 'real' or 'virtual'" in issue.message and "got 'fast'" in issue.message


def test_a_list_where_a_mapping_belongs_does_not_dump_the_value(registry: PluginRegistry) -> None:
    issue = only_issue(VALID + "turn_taking: [1, 2]\n", registry)
    assert issue.path == ("turn_taking",)
    assert "got" not in issue.message


def test_model_level_rule_points_at_its_block(registry: PluginRegistry) -> None:
    text = VALID + "chunking:\n  first_min_chars: 100\n  max_chars: 50\n"
    issue = only_issue(text, registry)
    assert issue.path == ("chunking",)
    assert issue.line == line_of(text, "chunking") + 1  # the block's value starts on the next line
    assert issue.message == "first_min_chars must not exceed max_chars (50)"


def test_min_chars_above_max_chars_is_refused_with_the_limit(registry: PluginRegistry) -> None:
    issue = only_issue(VALID + "chunking: {min_chars: 300, first_min_chars: 400, max_chars: 220}\n", registry)
    assert issue.path == ("chunking",)
    assert issue.message == "first_min_chars must not exceed max_chars and min_chars must not exceed max_chars (220)"


def test_every_problem_is_reported_at_once(registry: PluginRegistry) -> None:
    text = replace("name: test-agent", "name: bad name!") + "extra: 1\nsession: {clock: fast}\n"
    error = error_of(text, registry)
    assert {format_path(i.path) for i in error.issues} == {"name", "extra", "session.clock"}
    assert len(str(error).splitlines()) == 3


# --- secrets ---------------------------------------------------------------------------------


def test_secret_value_is_hidden_in_repr_and_dumps(registry: PluginRegistry) -> None:
    agent = parse(VALID, registry)
    assert SECRET not in repr(agent)
    assert SECRET not in str(agent)
    assert SECRET not in agent.model_dump_json()
    assert SECRET not in repr(agent.stt[0])


def test_secret_value_is_never_shown_in_errors(registry: PluginRegistry) -> None:
    # A wrong type for the secret itself: the message must not echo the input.
    text = replace("    api_key: ${STT_KEY}", "    api_key: 123456789")
    issue = only_issue(text, registry)
    assert issue.path == ("stt", 0, "api_key")
    assert "123456789" not in str(issue)
    assert "valid string" in issue.message
    # Other errors in a file holding a secret do not leak it either.
    text = replace("    api_key: ${STT_KEY}", f"    api_key: {SECRET}\n    languag: de")
    error = error_of(text, registry)
    assert SECRET not in str(error)
    assert SECRET not in repr(error.issues)


def test_secret_from_the_environment_with_a_bad_sibling(registry: PluginRegistry) -> None:
    text = replace("    api_key: ${STT_KEY}", "    api_key: ${STT_KEY}\n    language: [en, de]")
    error = error_of(text, registry)
    assert SECRET not in str(error)


# --- missing fields and providers --------------------------------------------------------------


def test_missing_required_core_field_points_at_its_parent(registry: PluginRegistry) -> None:
    text = replace("  system: You are helpful.", "  greeting: {text: Hi}")
    issue = only_issue(text, registry)
    assert issue.path == ("prompt",)
    assert issue.message == "missing required field 'system'"
    assert issue.line == 3  # where prompt's mapping starts


def test_missing_required_plugin_field(registry: PluginRegistry) -> None:
    issue = only_issue(replace("    api_key: ${STT_KEY}\n", ""), registry)
    assert issue.path == ("stt", 0)
    assert issue.message == "missing required field 'api_key'"


def test_missing_stage_is_required_when_a_provider_is_installed(registry: PluginRegistry) -> None:
    text = replace("tts:\n  - provider: fake_tts\n", "")
    issue = only_issue(text, registry)
    assert issue.path == ()
    assert issue.message == "missing required field 'tts'"


def test_empty_chain_is_an_error(registry: PluginRegistry) -> None:
    issue = only_issue(replace("tts:\n  - provider: fake_tts\n", "tts: []\n"), registry)
    assert issue.path == ("tts",)
    assert "at least 1 item" in issue.message


def test_unknown_provider_lists_the_installed_ones(registry: PluginRegistry) -> None:
    text = replace("  - provider: fake_llm", "  - provider: fake_lm")
    issue = only_issue(text, registry)
    assert issue.path == ("llm", 0, "provider")
    assert (issue.line, issue.column) == (line_of(text, "fake_lm"), 15)
    assert "unknown llm provider 'fake_lm'" in issue.message
    assert "did you mean 'fake_llm'" in issue.message
    assert "installed: fake_llm, other_llm" in issue.message
    assert "voiceflow plugins" in issue.message


def test_unknown_provider_of_a_single_provider_stage(registry: PluginRegistry) -> None:
    """tts has one provider, so pydantic reports a literal error rather than a union tag error."""
    issue = only_issue(replace("  - provider: fake_tts", "  - provider: elevenlabs"), registry)
    assert issue.path == ("tts", 0, "provider")
    assert "unknown tts provider 'elevenlabs'" in issue.message
    assert "installed: fake_tts" in issue.message


def test_missing_provider_key_lists_the_choices(registry: PluginRegistry) -> None:
    issue = only_issue(replace("  - provider: other_llm", "  - max_tokens: 5"), registry)
    assert issue.path == ("llm", 1)
    assert "missing 'provider:' (one of: fake_llm, other_llm)" in issue.message


@pytest.mark.parametrize("planned", ["web", "twilio", "local"])
def test_planned_transport_says_it_is_not_built_yet(registry: PluginRegistry, planned: str) -> None:
    text = replace("  provider: file", f"  provider: {planned}")
    issue = only_issue(text, registry)
    assert issue.path == ("transport", "provider")
    assert (issue.line, issue.column) == (line_of(text, planned), 13)
    assert f"({planned!r}) is not built yet" in issue.message
    assert "provider: file" in issue.message


def test_unknown_transport_is_unknown_not_planned(registry: PluginRegistry) -> None:
    issue = only_issue(replace("  provider: file", "  provider: fiel"), registry)
    assert "unknown transport provider 'fiel' (did you mean 'file'?)" in issue.message


def test_stages_without_an_installed_provider_are_optional() -> None:
    registry = PluginRegistry(entry_points=False, plugins=[LLMOnlyPlugin()])
    agent = parse_agent(
        "name: a\nprompt: {system: s}\nllm: [{provider: fake_llm}]\n", "a.yaml", registry, {}
    )
    assert agent.vad == agent.stt == agent.tts == []
    assert agent.transport is None
    schema = registry.agent_model.model_json_schema()
    assert "llm" in schema["properties"]
    assert "vad" not in schema["properties"] and "transport" not in schema["properties"]
    assert schema["required"] == ["name", "prompt", "llm"]


def test_writing_a_stage_nobody_provides_is_an_error() -> None:
    registry = PluginRegistry(entry_points=False, plugins=[LLMOnlyPlugin()])
    text = "name: a\nprompt: {system: s}\nllm: [{provider: fake_llm}]\ntts:\n  - provider: piper\n"
    with pytest.raises(ConfigError) as caught:
        parse_agent(text, "a.yaml", registry, {})
    (issue,) = caught.value.issues
    assert issue.path == ("tts",)
    assert issue.line == 5
    assert "no tts provider is installed" in issue.message


# --- turn-taking per state -----------------------------------------------------------------------


TURN_TAKING = """\
turn_taking:
  endpointing: {min_silence: 0.6, max_wait: 4}
  barge_in: {min_speech: 0.5}
  states:
    reading_digits:
      endpointing: {min_silence: 1.5}
    legal_notice:
      barge_in: {enabled: false}
"""


def test_turn_taking_for_state(registry: PluginRegistry) -> None:
    turn_taking = parse(VALID + TURN_TAKING, registry).turn_taking
    assert turn_taking.for_state(None) is turn_taking
    assert turn_taking.for_state("no_such_state") is turn_taking

    digits = turn_taking.for_state("reading_digits")
    # Set in the state: overridden. Not set there: the agent's own value, not the model default.
    assert digits.endpointing == Endpointing(min_silence=1.5, max_wait=4)
    assert digits.barge_in == turn_taking.barge_in == BargeIn(min_speech=0.5)

    legal = turn_taking.for_state("legal_notice")
    assert legal.endpointing == turn_taking.endpointing
    assert legal.barge_in == BargeIn(enabled=False, min_speech=0.5)
    assert legal.states == turn_taking.states


def test_state_patch_may_set_a_field_back_to_its_default() -> None:
    turn_taking = TurnTaking.model_validate(
        {"endpointing": {"max_wait": 4}, "states": {"s": {"endpointing": {"max_wait": 2.5}}}}
    )
    assert turn_taking.for_state("s").endpointing.max_wait == 2.5


def test_turn_taking_defaults_without_states() -> None:
    turn_taking = TurnTaking()
    assert turn_taking.for_state("anything") == turn_taking
    assert turn_taking.endpointing.min_silence == 0.45


# --- errors module -------------------------------------------------------------------------------


def test_format_path() -> None:
    assert format_path(("stt", 0, "model")) == "stt[0].model"
    assert format_path(("llm", 1)) == "llm[1]"
    assert format_path(()) == "(top level)"


def test_issue_without_a_position() -> None:
    issue = ConfigIssue("a.yaml", None, None, ("name",), "bad")
    assert str(issue) == "a.yaml: name: bad"
    assert str(ConfigError([issue, issue])) == "a.yaml: name: bad\na.yaml: name: bad"
