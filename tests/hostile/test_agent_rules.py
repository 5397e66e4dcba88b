"""The rules behind the hostile-file corpus, one at a time: limits and their names, numbers that
can only be mistakes, model paths, secrets from the environment, both YAML parsers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator

from voiceflow.config import YamlLimits
from voiceflow.config.base import ModelDirPath, ModelFilePath, ProviderConfig, Strict, path_problem
from voiceflow.config.errors import ConfigError, ConfigIssue, format_path
from voiceflow.config.loader import load_agent, parse_agent
from voiceflow.config.yaml_compose import PARSER
from voiceflow.config.yaml_source import load_yaml
from voiceflow.plugins import PluginRegistry, hookimpl
from voiceflow.plugins.hookspecs import Register
from voiceflow.providers import LLMProvider

ROOT = Path(__file__).resolve().parents[2]


# --- every number has a maximum -----------------------------------------------------------------


def _numbers_without_maximum(node: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        kinds = {node.get("type")} | {option.get("type") for option in node.get("anyOf", [])}
        bounded = any("maximum" in s or "exclusiveMaximum" in s for s in [node, *node.get("anyOf", [])])
        if kinds & {"number", "integer"} and not bounded and "const" not in node and "enum" not in node:
            found.append(where)
        for key, value in node.items():
            found += _numbers_without_maximum(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _numbers_without_maximum(value, f"{where}/{i}")
    return found


def test_every_number_in_the_builtin_agent_schema_has_a_maximum() -> None:
    schema = PluginRegistry(builtin_only=True).agent_model.model_json_schema()
    assert _numbers_without_maximum(schema, "#") == []
    assert "FileTransportConfig" in schema["$defs"]  # the file transport is checked too, not skipped


# --- limits ---------------------------------------------------------------------------------------


def test_the_limits_have_sensible_defaults() -> None:
    limits = YamlLimits()
    assert (limits.max_bytes, limits.max_depth, limits.max_alias_nodes) == (1024 * 1024, 64, 10_000)
    assert (limits.max_values, limits.max_issues) == (20_000, 100)
    with pytest.raises(AttributeError):
        limits.max_depth = 1000  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "limits", "named"),
    [
        ("a: " + "x" * 200 + "\n", YamlLimits(max_bytes=100), "max_bytes=100"),
        ("a: [[[1]]]\n", YamlLimits(max_depth=3), "max_depth=3"),
        ("a: &a [1, 2]\nb: [*a, *a, *a]\n", YamlLimits(max_alias_nodes=8), "max_alias_nodes=8"),
        ("a: [1, 2, 3]\nb: {c: d}\n", YamlLimits(max_values=8), "max_values=8"),
    ],
)
def test_limits_are_passable_and_named_in_the_refusal(
    tmp_path: Path, text: str, limits: YamlLimits, named: str
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(text)
    registry = PluginRegistry(builtin_only=True)
    with pytest.raises(ConfigError, match=named):
        load_agent(path, registry, env={}, limits=limits)
    assert load_yaml(text, "a.yaml", env={}, limits=YamlLimits())[0]  # within the defaults


def test_the_alias_count_includes_every_copy_and_just_fits() -> None:
    text = "a: &a [1, 2]\nb: [*a, *a]\n"  # two copies of a 3-value list
    assert load_yaml(text, "f", {}, YamlLimits(max_alias_nodes=6))[0] == {"a": [1, 2], "b": [[1, 2], [1, 2]]}
    with pytest.raises(ConfigError, match="max_alias_nodes=5"):
        load_yaml(text, "f", {}, YamlLimits(max_alias_nodes=5))


def test_the_issue_list_is_capped_with_a_count_of_the_rest() -> None:
    registry = PluginRegistry(builtin_only=True)
    text = "name: a\nprompt: {system: s}\n" + "".join(f"extra{i}: 1\n" for i in range(10))
    with pytest.raises(ConfigError) as caught:
        parse_agent(text, "a.yaml", registry, {}, limits=YamlLimits(max_issues=3))
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("a.yaml: (top level): ") and "more problems not listed (limit max_issues=3)" in lines[-1]


# --- YAML parsers and positions ---------------------------------------------------------------------


def test_libyaml_parses_when_pyyaml_has_it() -> None:
    assert PARSER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


@pytest.mark.parametrize("parser", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)])
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: 日本語😀: x\n", ": x"),  # a syntax error after wide characters
        ("a: {é😀: ü, b: [1, }\n", "}\n"),
        ("déjà: vu\nk: ñ\n\tx: 1\n", "\tx"),
    ],
)
def test_columns_count_characters_with_both_parsers(
    monkeypatch: pytest.MonkeyPatch, parser: type[yaml.SafeLoader], text: str, needle: str
) -> None:
    from voiceflow.config import yaml_compose

    monkeypatch.setattr(yaml_compose, "PARSER", parser)
    with pytest.raises(ConfigError) as caught:
        load_yaml(text, "f.yaml", env={})
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (line, column)


@pytest.mark.parametrize("parser", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)])
def test_value_positions_after_wide_characters_with_both_parsers(
    monkeypatch: pytest.MonkeyPatch, parser: type[yaml.SafeLoader]
) -> None:
    from voiceflow.config import yaml_compose

    monkeypatch.setattr(yaml_compose, "PARSER", parser)
    _, source = load_yaml("a: {é😀: ü, b: 5}\n", "f", {})
    assert source.position(("a", "b")) == (1, 15)
    assert source.position(("a", "é😀"), key=True) == (1, 5)


def test_escaped_control_characters_and_surrogates_print_as_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    from voiceflow.config import yaml_compose

    monkeypatch.setattr(yaml_compose, "PARSER", yaml.SafeLoader)  # libyaml refuses the surrogate itself
    registry = PluginRegistry(builtin_only=True)
    text = 'name: a\nprompt: {system: s}\n"\\ud800\\e[2J\\nx": 1\n'
    with pytest.raises(ConfigError) as caught:
        parse_agent(text, "a.yaml", registry, {})
    printed = str(caught.value)
    printed.encode("ascii")  # nothing a terminal would interpret, nothing unprintable
    assert "\\ud800\\x1b[2J\\nx" in printed


def test_merges_follow_the_yaml_spec_and_keep_the_winners_positions() -> None:
    text = "a: &a {key_one: 1, y: 1}\nb: &b {key_one: 2, z: 2}\nc: {<<: [*b, *a], y: 3}\nd:\n  <<: *a\n  <<: *b\n"
    data, source = load_yaml(text, "f", {})
    assert data["c"] == {"key_one": 2, "y": 3, "z": 2}  # the first mapping listed wins, written keys win
    assert data["d"] == {"key_one": 1, "y": 1, "z": 2}
    assert source.position(("c", "key_one"), key=True) == (2, 8)
    assert source.position(("c", "y"), key=True) == (3, 19)


def test_paths_quote_keys_that_are_not_plain_words() -> None:
    assert format_path(("stt", 0, "model")) == "stt[0].model"
    assert format_path(("a", " b", "c.d", "")) == "a[' b']['c.d']['']"
    assert str(ConfigIssue("f", 1, 2, ("x\ny",), "m\nn")) == "f:1:2: ['x\\ny']: m\\nn"


# --- numbers that can only be mistakes, in every plugin's config ---------------------------------------


class PluginLikeConfig(ProviderConfig):
    provider: Literal["plugin_like"]
    gain: float = Field(1.0, ge=0, le=4)
    count: int | None = Field(None, ge=1, le=10)
    loud: bool = False
    either: int | bool = 0


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"gain": True}, "bool_not_number"),
        ({"count": False}, "bool_not_number"),
        ({"gain": float("inf")}, "finite_number"),
        ({"gain": "nan"}, "finite_number"),
        ({"gain": "1e400"}, "finite_number"),
        ({"timeouts": {"idle": True}}, "bool_not_number"),
        ({"timeouts": {"prepare": 7200}}, "less_than_equal"),
    ],
)
def test_a_plugin_config_inherits_the_number_rules(data: dict[str, Any], kind: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PluginLikeConfig.model_validate({"provider": "plugin_like", **data})
    assert [error["type"] for error in caught.value.errors()] == [kind]


def test_numbers_as_strings_and_real_booleans_still_work() -> None:
    config = PluginLikeConfig.model_validate(
        {"provider": "plugin_like", "gain": "0.4", "count": "3", "loud": True, "either": True}
    )
    assert (config.gain, config.count, config.loud, config.either) == (0.4, 3, True, True)
    assert config.timeouts.prepare == 60.0


def test_boolean_errors_do_not_hide_the_other_problems() -> None:
    with pytest.raises(ValidationError) as caught:
        PluginLikeConfig.model_validate({"provider": "plugin_like", "gain": True, "count": 50, "nope": 1})
    assert sorted(error["loc"][0] for error in caught.value.errors()) == ["count", "gain", "nope"]


def test_an_interpolated_number_is_accepted_but_never_echoed() -> None:
    registry = PluginRegistry(builtin_only=True)
    base = (ROOT / "agents/local.yaml").read_text().replace("temperature: 0.3", "temperature: ${TEMP}")
    env = {"TEMP": "0.4", "VOICEFLOW_OUTPUT": "/tmp/voiceflow-rules-call.wav"}
    agent = parse_agent(base, "local.yaml", registry, env, base_dir=ROOT / "agents")
    assert agent.llm[0].temperature == 0.4  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as caught:
        parse_agent(base, "local.yaml", registry, {**env, "TEMP": "hot-secret"}, base_dir=ROOT / "agents")
    (issue,) = caught.value.issues
    assert issue.message.endswith("got the value of ${TEMP} (not shown)")
    assert "hot-secret" not in str(caught.value)


# --- secrets: the redaction backstop ----------------------------------------------------------------


class EchoConfig(ProviderConfig):
    provider: Literal["echo_secret"]
    url: str = "http://localhost"
    key: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _echo(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"{value} must use https (got {value!r}, {value.upper()})")
        return value


class EchoLLM(LLMProvider[EchoConfig]):
    """Echoes its input in errors."""

    name = "echo_secret"
    config_model = EchoConfig

    async def stream(self, messages: Any) -> Any:  # pragma: no cover - never called
        yield ""


class EchoPlugin:
    @hookimpl
    def register_providers(self, register: Register) -> None:
        register(EchoLLM)


def test_env_values_are_redacted_from_any_message() -> None:
    registry = PluginRegistry(entry_points=False, plugins=[EchoPlugin()])
    text = "name: a\nprompt: {system: s}\nllm:\n  - provider: echo_secret\n    url: http://u:${PASS}@host/${X}\n"
    with pytest.raises(ConfigError) as caught:
        parse_agent(text, "a.yaml", registry, {"PASS": "p4ss'w0rd", "X": "ab"})
    (issue,) = caught.value.issues
    assert "p4ss'w0rd" not in issue.message and "p4ss\\'w0rd" not in issue.message
    assert "http://u:${PASS}@host/ab must use https" in issue.message  # 2 characters: not a secret
    assert issue.message.endswith("(not shown)")


def test_a_secret_field_never_shows_its_input() -> None:
    registry = PluginRegistry(entry_points=False, plugins=[EchoPlugin()])
    text = "name: a\nprompt: {system: s}\nllm:\n  - {provider: echo_secret, url: 'https://x', key: [sk-123456]}\n"
    with pytest.raises(ConfigError) as caught:
        parse_agent(text, "a.yaml", registry, {})
    assert "sk-123456" not in str(caught.value)


class CrashingConfig(ProviderConfig):
    provider: Literal["echo_secret"]
    where: str = "."

    @field_validator("where")
    @classmethod
    def _crash(cls, value: str) -> str:
        raise RuntimeError(f"Symlink loop from {value!r}")


class CrashingLLM(EchoLLM):
    """Its validator crashes."""

    config_model = CrashingConfig  # type: ignore[assignment]


class CrashingPlugin:
    @hookimpl
    def register_providers(self, register: Register) -> None:
        register(CrashingLLM)


def test_a_validator_that_crashes_is_an_issue_of_its_block_not_a_traceback() -> None:
    registry = PluginRegistry(entry_points=False, plugins=[CrashingPlugin()])
    text = "name: a\nprompt: {system: s}\nllm:\n  - provider: echo_secret\n    where: x\n"
    with pytest.raises(ConfigError) as caught:
        parse_agent(text, "a.yaml", registry, {})
    assert str(caught.value) == (
        "a.yaml:4:5: llm[0]: could not be checked (RuntimeError: Symlink loop from 'x'); this is a bug, "
        "please report it"
    )


# --- model paths ------------------------------------------------------------------------------------


def test_path_problem_names_what_the_path_is(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert path_problem(tmp_path / "file") is None
    assert path_problem(tmp_path / "dir", directory=True) is None
    assert path_problem(tmp_path / "missing") == "no such file"
    assert path_problem(tmp_path / "dir") == "is a directory"
    assert path_problem(tmp_path / "file", directory=True) == "is not a directory"
    assert path_problem(tmp_path / "fifo") == "is a FIFO, not a regular file"
    assert path_problem(tmp_path / "loop") == "too many levels of symbolic links"
    assert path_problem(Path("/dev/zero")) == "is a character device, not a regular file"
    assert path_problem(tmp_path / "file" / "below") == "a part of the path is not a directory"
    assert path_problem(Path("a\x00b")) == "the name contains a NUL character"


class PathsConfig(Strict):
    weights: ModelFilePath | None = None
    folder: ModelDirPath | None = None


def test_model_paths_resolve_against_the_agent_file_and_are_checked_only_then(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"x")
    (tmp_path / "m").mkdir()
    context = {"base_dir": tmp_path}
    config = PathsConfig.model_validate({"weights": "w.bin", "folder": "m"}, context=context)
    assert (config.weights, config.folder) == (tmp_path / "w.bin", tmp_path / "m")
    assert PathsConfig(weights=Path("nowhere.bin")).weights == Path("nowhere.bin")  # built in code
    with pytest.raises(ValidationError) as caught:
        PathsConfig.model_validate({"weights": "m", "folder": "w.bin"}, context=context)
    assert [error["msg"] for error in caught.value.errors()] == [
        f"is a directory: {tmp_path / 'm'}",
        f"is not a directory: {tmp_path / 'w.bin'}",
    ]
