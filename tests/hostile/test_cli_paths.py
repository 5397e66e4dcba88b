"""Where a call's results go, checked before the call: the WAV and the timeline are written only
once the call is over, so a path that cannot take them must be refused up front, in one line,
before any model loads, rather than losing the whole call at the end.

Every case runs the real ``voiceflow run`` with an empty ``VOICEFLOW_CACHE``: a refusal must
leave it untouched (no model joined or loaded) and come back within seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VOICEFLOW = str(Path(sys.executable).parent / "voiceflow")
RECORDING = ROOT / "agents/recordings/capital.wav"


def refused(tmp_path: Path, *args: str, command: str = "run", agent: Path | None = None) -> str:
    """Run ``voiceflow`` expecting a one-line refusal (exit 2); returns that line."""
    cache = tmp_path / "model-cache"
    started = time.monotonic()
    argv = [VOICEFLOW, command, str(agent or ROOT / "agents/local.yaml"), *args]
    result = subprocess.run(argv, cwd=ROOT, env={**os.environ, "VOICEFLOW_CACHE": str(cache)},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not cache.exists(), "a refused run must not touch the models"
    assert time.monotonic() - started < 15
    return lines[0]


def caller(tmp_path: Path) -> Path:
    copy = tmp_path / "caller.wav"
    shutil.copyfile(RECORDING, copy)
    return copy


# --- logging options --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["loud", "", "trace", "info\nerror", "10"])
def test_an_unknown_log_level_is_refused(value: str, tmp_path: Path) -> None:
    line = refused(tmp_path, "--log-level", value)
    assert line.startswith("--log-level must be one of debug, info, warning, error (got ")
    assert repr(value) in line


@pytest.mark.parametrize("value", ["xml", "text", ""])
def test_an_unknown_log_format_is_refused(value: str, tmp_path: Path) -> None:
    line = refused(tmp_path, "--log-format", value)
    assert line.startswith("--log-format must be 'console' or 'json'") and repr(value) in line


def test_log_options_are_case_insensitive(tmp_path: Path) -> None:
    """Accepted, so the run goes on to the next problem: the output folder."""
    line = refused(tmp_path, "--log-level", "WARNING", "--log-format", "JSON",
                   "--output", str(tmp_path / "missing" / "call.wav"))
    assert line.startswith("--output: ")


# --- the output WAV ----------------------------------------------------------------------------------


def test_an_output_in_a_missing_folder_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    out = tmp_path / "no-such-folder" / "call.wav"
    line = refused(tmp_path, "--input", str(RECORDING), "--output", str(out))
    assert line.startswith(f"--output: {out}") and "does not exist" in line
    assert not out.parent.exists()


def test_an_output_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    line = refused(tmp_path, "--output", str(tmp_path))
    assert line.startswith(f"--output: {tmp_path} is a directory")


def test_an_output_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    line = refused(tmp_path, "--output", str(tmp_path / "notes.txt" / "call.wav"))
    assert line.startswith("--output: ") and "is not a folder" in line


def test_an_output_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert "is not a regular file" in refused(tmp_path, "--output", str(fifo))


@pytest.mark.parametrize("how", ["same path", "dotted path", "symlink", "hard link"])
def test_an_output_that_is_the_input_is_refused_and_the_recording_survives(how: str, tmp_path: Path) -> None:
    recording = caller(tmp_path)
    before = recording.read_bytes()
    out = {"same path": recording, "dotted path": tmp_path / "x" / ".." / "caller.wav",
           "symlink": tmp_path / "link.wav", "hard link": tmp_path / "hard.wav"}[how]
    if how == "dotted path":
        (tmp_path / "x").mkdir()
    elif how == "symlink":
        out.symlink_to(recording)
    elif how == "hard link":
        os.link(recording, out)
    line = refused(tmp_path, "--input", str(recording), "--output", str(out))
    assert line.startswith("--output: ") and "same file" in line
    assert recording.read_bytes() == before


def test_an_unwritable_output_folder_is_refused(tmp_path: Path) -> None:
    """Root bypasses permission bits, so a read-only kernel filesystem stands in when run as root."""
    if os.geteuid() == 0:
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("no /sys to stand in for a read-only folder")
        out = Path("/sys/kernel/voiceflow-call.wav")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "call.wav"
    line = refused(tmp_path, "--output", str(out))
    assert line.startswith(f"--output: {out} cannot be written (")


def test_an_existing_output_is_probed_without_being_changed(tmp_path: Path) -> None:
    """The probe opens an existing file for appending and writes nothing; a new file it creates is
    removed again, so a refused run leaves the folder as it was."""
    old = tmp_path / "old.wav"
    old.write_bytes(b"yesterday's call")
    stamp = os.stat(old).st_mtime_ns
    line = refused(tmp_path, "--output", str(old), "--timeline", str(tmp_path / "missing" / "t.json"))
    assert line.startswith("--timeline: ")
    assert old.read_bytes() == b"yesterday's call" and os.stat(old).st_mtime_ns == stamp
    refused(tmp_path, "--output", str(tmp_path / "new.wav"), "--timeline", str(tmp_path / "missing" / "t.json"))
    assert not (tmp_path / "new.wav").exists()


# --- the timeline JSON --------------------------------------------------------------------------------


def test_a_timeline_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    line = refused(tmp_path, "--output", str(tmp_path / "call.wav"), "--timeline", str(tmp_path / "a" / "t.json"))
    assert line.startswith("--timeline: ") and "does not exist" in line


def test_a_timeline_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    line = refused(tmp_path, "--timeline", str(tmp_path))
    assert line.startswith(f"--timeline: {tmp_path} is a directory")


def test_a_timeline_that_is_the_input_or_the_output_is_refused(tmp_path: Path) -> None:
    recording = caller(tmp_path)
    line = refused(tmp_path, "--input", str(recording), "--timeline", str(recording))
    assert line.startswith("--timeline: ") and "is the input recording" in line
    out = tmp_path / "call.wav"
    line = refused(tmp_path, "--output", str(out), "--timeline", str(out))
    assert line.startswith("--timeline: ") and "same file as --output" in line


def test_the_default_timeline_next_to_the_output_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "call.timeline.json").mkdir()
    line = refused(tmp_path, "--output", str(tmp_path / "call.wav"))
    assert line.startswith(f"timeline: {tmp_path / 'call.timeline.json'} is a directory")


# --- the same checks on an agent file ----------------------------------------------------------------


def agent_with(tmp_path: Path, transport: str) -> Path:
    """agents/local.yaml with its transport block replaced (the recording given absolutely)."""
    text = (ROOT / "agents/local.yaml").read_text()
    start = text.index("transport:\n")
    end = text.index("\n\n", start)
    agent = tmp_path / "agent.yaml"
    agent.write_text(text[:start] + f"transport:\n  provider: file\n  input: {RECORDING}\n{transport}" + text[end:])
    return agent


@pytest.mark.parametrize(("setting", "message"), [
    ("output: missing/call.wav", "does not exist"),
    ("output: .", "is a directory"),
    (f"output: {RECORDING}", "input and output are the same file"),
    ("lead_in: .inf", "finite number"),
    ("lead_in: true", "boolean"),
    ("lead_in: 3600", "less than or equal to 60"),
    ("buffer_seconds: 0", "greater than 0"),
    ("buffer_seconds: 1e9", "less than or equal to 60"),
    ("buffer_seconds: .nan", "finite number"),
])
def test_an_agent_files_transport_is_checked_at_validation(setting: str, message: str, tmp_path: Path) -> None:
    agent = agent_with(tmp_path, f"  {setting}\n")
    line_no = next(n for n, text in enumerate(agent.read_text().splitlines(), 1) if text == f"  {setting}")
    result = subprocess.run([VOICEFLOW, "validate", str(agent)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and message in line, line
    assert line.startswith(f"{agent}:{line_no}:") or line.startswith(f"{agent}:") and "transport" in line
    refused_line = refused(tmp_path, agent=agent)
    assert refused_line.startswith(f"{agent}:") and message in refused_line


@pytest.mark.parametrize("option", ["--output", "--timeline"])
def test_a_path_ending_in_a_slash_names_a_folder_and_is_refused(tmp_path: Path, option: str) -> None:
    folder = tmp_path / "not-yet"
    result = subprocess.run([VOICEFLOW, "run", "agents/local.yaml", option, f"{folder}/"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "names a folder" in result.stderr
    assert not folder.exists()
