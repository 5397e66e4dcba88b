"""Property tests: whatever an agent file holds, ``load_agent`` returns a sane config or raises
:class:`ConfigError` with one-line issues, and never anything else.

Run the long version by hand (random seeds, tens of thousands of examples, no time budget)::

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q -p no:cacheprovider tests/hostile/test_fuzz_agent_files.py

The default ``ci`` profile (tests/hostile/conftest.py) is deterministic and bounded in time.

Inputs are (a) arbitrary bytes and arbitrary text, (b) mutations of the shipped
agents/local.yaml: byte flips, deleted and duplicated lines, inserted control characters,
anchors, aliases, merge keys and deep brackets, and values replaced by hostile scalars
(``.inf``, ``1e400``, ``true``, ``-1``, ``1e9``, very long strings, ``${VAR}`` holding a secret).
A config that is accepted must hold only finite numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import ConfigError
from voiceflow.config.loader import load_agent
from voiceflow.plugins.registry import PluginRegistry

ROOT = Path(__file__).resolve().parents[2]
LOCAL = (ROOT / "agents/local.yaml").read_bytes()
SECRET = "fz-secret-0f9e8d7c6b5a"
LINE = re.compile(r"^[^:]+(:\d+:\d+)?: \S.*: .+")
HOSTILE_SCALARS = [
    ".inf", "-.inf", ".nan", ".NaN", "1e400", "1.0e+400", "-1.0e+400", "true", "false", "yes", "-1",
    "0", "-0.0", "1e9", "1000000000", "99999999999999999999999", "9" * 5000, "0x7fffffff", "0o777",
    "1_000", "12:30:00", "2001-12-14", "null", "~", "''", '""', "x" * 20_000, "[1, 2]", "{a: 1}",
    "*nope", "&a 5", "!!binary 'a'", "!!python/name:os.system", '"\\e[2J"', '"\\0"', "${VF_FUZZ_SECRET}",
    "${VF_FUZZ_SECRET}${VF_FUZZ_SECRET}", "${UNSET_FUZZ_VAR}", "${UNSET_FUZZ_VAR:-.inf}", "$${x}",
    "|\n  block", ">-", "- a", "? a", "#", "'", '"', "[", "{", "]", "<<", "=", "é" * 300, "\U0001f600",
]
CONTROL = [b"\x00", b"\x1b[2J", b"\x07", b"\x7f", b"\xc2\x85", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xed\xa0\x80",
           b"\t", b"\r", b"\xff"]
NUMBERS = [
    ".inf", "-.inf", ".nan", "1e400", "1.0e+400", "true", "false", "-1", "-0.0", "0", "1e9", "1.0e+9",
    "1000000000", "1e-400", "1.0e-400", "0x10", "0o7", "+1", "1_0", "1.", ".5", "0.5", "'0.4'", '"2"',
    "${VF_NUM}", "${VF_NUM:-1e400}", "${UNSET_FUZZ_VAR:-0.2}", "${UNSET_FUZZ_VAR:-.inf}", "1:30", "9" * 400,
    "5e-324", "1.7976931348623157e+308", "2.0e+308", "'nan'", "'inf'", "'-Infinity'", "'1e400'",
]
VALUE_LINE = re.compile(rb"^(\s*(?:- )?[A-Za-z_]+:[ ]+)(\S.*)$")
NUMBER_LINE = re.compile(rb"^(\s*(?:- )?[A-Za-z_]+:[ ]+)([-+.0-9][^ #]*)(.*)$")


class Budget(Protocol):
    def spent(self, name: str) -> bool: ...


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return PluginRegistry(builtin_only=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like agents/: the relative recording path of local.yaml resolves here too."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "recordings").symlink_to(ROOT / "agents/recordings")
    return folder


def env(home: Path) -> dict[str, str]:
    return {"VF_FUZZ_SECRET": SECRET, "VF_NUM": "0.3", "VOICEFLOW_OUTPUT": str(home / "call.wav")}


def load(data: bytes, home: Path, registry: PluginRegistry) -> AgentConfig | ConfigError:
    path = home / "agent.yaml"
    path.write_bytes(data)
    try:
        agent = load_agent(path, registry, env=env(home))
    except ConfigError as exc:
        check_issues(exc, path)
        event("refused")
        return exc
    event("accepted")
    return agent


def check_issues(error: ConfigError, path: Path) -> None:
    assert error.issues
    for issue in error.issues:
        assert issue.filename == str(path)
        assert issue.message and not set(issue.message) & {"\n", "\r", "\x85", "\u2028", "\u2029"}
        assert "please report it" not in issue.message, issue  # a bug of ours, caught as a last resort
        assert SECRET not in issue.message
    for line in str(error).splitlines():
        assert LINE.match(line), line


def floats_in(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for item in value.values() for f in floats_in(item)]
    if isinstance(value, list | tuple):
        return [f for item in value for f in floats_in(item)]
    return []


def check_sane(agent: AgentConfig) -> None:
    numbers = floats_in(agent.model_dump())
    assert numbers and all(math.isfinite(number) for number in numbers)


# --- (a) arbitrary input ------------------------------------------------------------------------


@given(data=st.one_of(st.binary(max_size=4096), st.text(max_size=2048).map(lambda text: text.encode("utf-8", "surrogatepass"))))
@example(data=b"")
@example(data=b"\xff\xfe")
@example(data=b"[" * 5000)
@example(data=b"a: &a [*a]")
def test_arbitrary_bytes_are_refused_in_one_line_or_loaded(
    data: bytes, home: Path, registry: PluginRegistry, fuzz_budget: Budget
) -> None:
    if fuzz_budget.spent("bytes"):
        return
    result = load(data, home, registry)
    if isinstance(result, AgentConfig):
        check_sane(result)


# --- (b) mutations of a real agent ----------------------------------------------------------------

Mutation = Callable[[st.DrawFn, bytearray], bytearray]


def flip_byte(draw: st.DrawFn, data: bytearray) -> bytearray:
    if data:
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return data


def _lines(data: bytearray) -> list[bytes]:
    return bytes(data).split(b"\n")


def delete_line(draw: st.DrawFn, data: bytearray) -> bytearray:
    lines = _lines(data)
    del lines[draw(st.integers(0, len(lines) - 1))]
    return bytearray(b"\n".join(lines))


def duplicate_line(draw: st.DrawFn, data: bytearray) -> bytearray:
    lines = _lines(data)
    at = draw(st.integers(0, len(lines) - 1))
    lines.insert(at, lines[at])
    return bytearray(b"\n".join(lines))


def insert_bytes(draw: st.DrawFn, data: bytearray) -> bytearray:
    piece = draw(st.one_of(
        st.sampled_from(CONTROL),
        st.sampled_from([b"&a ", b"*a", b"&b ", b"*b", b"<<: *a\n", b"\n<<: *b\n", b"{", b"}", b"]", b": ", b"- "]),
        st.integers(1, 300).map(lambda n: b"[" * n),
        st.integers(1, 300).map(lambda n: b"{a: " * n),
    ))
    at = draw(st.integers(0, len(data)))
    return data[:at] + piece + data[at:]


def replace_value(draw: st.DrawFn, data: bytearray) -> bytearray:
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if VALUE_LINE.match(line)]
    if not candidates:
        return data
    at = draw(st.sampled_from(candidates))
    match = VALUE_LINE.match(lines[at])
    assert match is not None
    scalar = draw(st.sampled_from(HOSTILE_SCALARS)).encode("utf-8")
    lines[at] = match.group(1) + scalar
    return bytearray(b"\n".join(lines))


def replace_number(draw: st.DrawFn, data: bytearray) -> bytearray:
    """A number written in the file becomes another: some fine, some that can only be mistakes."""
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if NUMBER_LINE.match(line)]
    at = draw(st.sampled_from(candidates))
    match = NUMBER_LINE.match(lines[at])
    assert match is not None
    lines[at] = match.group(1) + draw(st.sampled_from(NUMBERS)).encode() + match.group(3)
    return bytearray(b"\n".join(lines))


def anchor_and_alias(draw: st.DrawFn, data: bytearray) -> bytearray:
    """Anchor one value and use it elsewhere, as a value or as a merge."""
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if VALUE_LINE.match(line)]
    if len(candidates) < 2:
        return data
    first, second = sorted(draw(st.lists(st.sampled_from(candidates), min_size=2, max_size=2, unique=True)))
    m1, m2 = VALUE_LINE.match(lines[first]), VALUE_LINE.match(lines[second])
    assert m1 is not None and m2 is not None
    lines[first] = m1.group(1) + b"&fz " + m1.group(2)
    lines[second] = m2.group(1) + draw(st.sampled_from([b"*fz", b"[*fz, *fz]", b"{<<: *fz}"]))
    return bytearray(b"\n".join(lines))


MUTATIONS: list[Mutation] = [
    flip_byte, delete_line, duplicate_line, insert_bytes, replace_value, replace_number, anchor_and_alias,
]


@st.composite
def mutated_agent(draw: st.DrawFn, mutations: list[Mutation] = MUTATIONS, most: int = 4) -> bytes:
    data = bytearray(LOCAL)
    for _ in range(draw(st.integers(1, most))):
        data = draw(st.sampled_from(mutations))(draw, data)
    return bytes(data)


@given(data=mutated_agent())
def test_mutated_agents_are_refused_in_one_line_or_loaded_sane(
    data: bytes, home: Path, registry: PluginRegistry, fuzz_budget: Budget
) -> None:
    if fuzz_budget.spent("mutations"):
        return
    result = load(data, home, registry)
    if isinstance(result, AgentConfig):
        check_sane(result)


@given(data=mutated_agent([replace_number, replace_number, anchor_and_alias], most=2))
def test_any_accepted_config_holds_only_finite_numbers(
    data: bytes, home: Path, registry: PluginRegistry, fuzz_budget: Budget
) -> None:
    """Numbers replaced by others are the mutations most often accepted: no infinity, NaN or
    boolean may slip through as a number."""
    if fuzz_budget.spent("accepted"):
        return
    result = load(data, home, registry)
    if isinstance(result, AgentConfig):
        check_sane(result)


def test_the_unmutated_agent_loads(home: Path, registry: PluginRegistry) -> None:
    path = home / "unmutated.yaml"
    path.write_bytes(LOCAL)
    check_sane(load_agent(path, registry, env=env(home)))
