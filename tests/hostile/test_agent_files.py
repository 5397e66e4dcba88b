"""Any bytes in, one line per problem out: the hostile agent-file corpus through ``load_agent`` and
through the real ``voiceflow validate``.

Every case of :mod:`agent_corpus` must raise :class:`ConfigError` (never anything else) whose
issues name the file and hold one-line messages, stating what the case is about, never showing a
value that came from the environment. In-process each case runs under both YAML parsers (libyaml
and pure Python). The CLI runs each group of cases in one ``voiceflow validate`` call with a
memory cap and a hard 10 s timeout: exit 1, every stderr line ``file[:line:col]: field: message``,
every file reported, no traceback. The in-process time bound (2 s) is far above the ~50 ms the
slowest case takes, so a busy CI box does not make it flaky; the subprocess timeout is the hard
limit.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from agent_corpus import ENV, SECRET, Case, agent_text, corpus

from voiceflow.config import yaml_compose
from voiceflow.config.errors import ConfigError
from voiceflow.config.loader import load_agent
from voiceflow.plugins.registry import PluginRegistry

VOICEFLOW = str(Path(sys.executable).parent / "voiceflow")
LINE = re.compile(r"^[^:]+(:\d+:\d+)?: \S.*: .+")
CASES = corpus()
GROUPS = sorted({case.group for case in CASES})
MEMORY_CAP = 2 * 1024**3
ROOT_USER = os.geteuid() == 0


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return PluginRegistry(builtin_only=True)


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "libyaml":
        if not getattr(yaml, "__with_libyaml__", False):
            pytest.skip("PyYAML was built without libyaml")
        monkeypatch.setattr(yaml_compose, "PARSER", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(yaml_compose, "PARSER", yaml.SafeLoader)
    return str(request.param)


def build(case: Case, tmp_path: Path) -> Path:
    folder = tmp_path / case.name
    folder.mkdir()
    return case.make(folder)


def check_error(error: ConfigError, path: Path, case: Case) -> None:
    assert error.issues, case.id
    for issue in error.issues:
        assert issue.filename == str(path)
        assert issue.message and "\n" not in issue.message and "\r" not in issue.message
        assert "please report it" not in issue.message, issue  # a bug of ours, caught as a last resort
    text = str(error)
    for line in text.splitlines():
        assert LINE.match(line), line
    assert case.expect in text, text[:2000]
    assert SECRET not in text and ENV["VF_SECRET_DIR"] not in text
    if case.position is not None:
        first = error.issues[0]
        assert (first.line, first.column) == case.position, str(first)
    if case.name == "unreadable" and not ROOT_USER:
        assert "permission denied" in text


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_load_agent_refuses_every_hostile_file_in_one_line_per_problem(
    case: Case, tmp_path: Path, registry: PluginRegistry, parser: str
) -> None:
    path = build(case, tmp_path)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_agent(path, registry, env=ENV)
    elapsed = time.perf_counter() - start
    check_error(caught.value, path, case)
    assert elapsed < 2.0, f"{case.id} took {elapsed:.2f} s"


def test_the_corpus_covers_every_class_of_issue_5() -> None:
    assert set(GROUPS) == {
        "utf8", "binary", "control", "bomb", "recursive", "nesting", "path", "limits", "number",
        "secret", "model", "yaml",
    }
    assert all(sum(case.group == group for case in CASES) >= 4 for group in GROUPS)
    assert len({case.id for case in CASES}) == len(CASES)


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VOICEFLOW, "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, **ENV},
        preexec_fn=_cap_memory,
    )


@pytest.mark.parametrize("group", GROUPS)
def test_cli_validate_reports_each_file_of_a_group_in_one_line_per_problem(group: str, tmp_path: Path) -> None:
    cases = [case for case in CASES if case.group == group]
    paths = [build(case, tmp_path) for case in cases]
    good = tmp_path / "good.yaml"
    good.write_text(agent_text(tmp_path))
    result = validate(good, *paths, good)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines
    for line in lines:
        assert LINE.match(line), line
    for case, path in zip(cases, paths, strict=True):
        reported = [line for line in lines if line.startswith(f"{path}:")]
        assert reported, f"{case.id}: {path} not reported"
        assert case.expect in "\n".join(reported), (case.id, reported[:3])
    assert result.stdout == f"{good}: ok\n{good}: ok\n"
    assert SECRET not in result.stderr


def test_cli_checks_the_files_after_a_bad_one(tmp_path: Path) -> None:
    first, last = tmp_path / "a.yaml", tmp_path / "c.yaml"
    for path in (first, last):
        path.write_text(agent_text(tmp_path))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\n")
    result = validate(first, bad, last)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{first}: ok", f"{last}: ok"]
    assert result.stderr == f"{bad}:1:7: (top level): not UTF-8 text: byte 0xff cannot be decoded (save the file as UTF-8)\n"


def test_a_bug_while_checking_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import voiceflow.cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(voiceflow.cli, "load_agent", broken)
    result = CliRunner().invoke(voiceflow.cli.app, ["validate", str(tmp_path / "x.yaml"), str(tmp_path / "y.yaml")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines
    assert "internal error while checking this file (RuntimeError: boom\\nsecond line)" in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
