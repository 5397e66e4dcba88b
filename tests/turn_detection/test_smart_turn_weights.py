"""Getting the smart-turn model: out of a wheel into the cache, verified, never half-written.

Wheels are built here around the real model bytes (or tampered copies), so every path of
``voiceflow smart-turn fetch`` except pip's own download runs without the network; CI runs the
real download in scripts/test.sh.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from voiceflow.models import ModelError
from voiceflow_smart_turn import weights
from voiceflow_smart_turn.weights import FETCH_COMMAND, SMART_TURN_V32, fetch, installed

VOICEFLOW = str(Path(sys.executable).parent / "voiceflow")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty voiceflow cache for this test."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("VOICEFLOW_CACHE", str(directory))
    return directory


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to download."""

    def refuse(*args: object, **kwargs: object) -> Path:
        raise AssertionError("tried to download the wheel")

    monkeypatch.setattr(weights, "download_wheel", refuse)


def make_wheel(path: Path, member: bytes | None, name: str = SMART_TURN_V32.member) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pipecat/__init__.py", "")
        if member is not None:
            archive.writestr(name, member)
    return path


def flipped(data: bytes) -> bytes:
    """The same size, one byte different."""
    return data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_missing_model_names_the_command(cache: Path) -> None:
    with pytest.raises(ModelError, match=FETCH_COMMAND) as caught:
        installed()
    assert str(cache / SMART_TURN_V32.name) in str(caught.value)


def test_fetch_from_a_wheel_keeps_only_the_verified_model(
    cache: Path, model_file: Path, tmp_path: Path, no_pip: None
) -> None:
    wheel = make_wheel(tmp_path / "pipecat_ai-1.14.0-py3-none-any.whl", model_file.read_bytes())
    path = fetch(wheel)
    assert path == cache / SMART_TURN_V32.name == installed()
    assert leftovers(cache) == [SMART_TURN_V32.name]  # no temporary file, nothing else of the wheel
    wheel.unlink()
    assert fetch() == path  # already there: no wheel, no download


def test_fetch_from_the_onnx_file_itself(cache: Path, model_file: Path, no_pip: None) -> None:
    assert fetch(model_file).read_bytes() == model_file.read_bytes()


def test_fetch_without_a_source_downloads_the_pinned_wheel(
    cache: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def fake_download(directory: Path, model: weights.WheelMember = SMART_TURN_V32) -> Path:
        asked.append(model.requirement)
        return make_wheel(directory / "pipecat_ai-1.14.0-py3-none-any.whl", model_file.read_bytes())

    monkeypatch.setattr(weights, "download_wheel", fake_download)
    assert fetch() == installed()
    assert asked == ["pipecat-ai==1.14.0"]


@pytest.mark.parametrize(
    ("member", "error"),
    [
        ("tampered", "sha256 .* expected 2bb02631"),
        ("short", "has 100 bytes, expected 8679182: refusing it"),
        ("absent", "has no pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"),
    ],
)
def test_a_wheel_without_the_right_model_is_refused(
    cache: Path, model_file: Path, tmp_path: Path, member: str, error: str
) -> None:
    data = {"tampered": flipped(model_file.read_bytes()), "short": b"x" * 100, "absent": None}[member]
    wheel = make_wheel(tmp_path / "pipecat_ai-1.14.0-py3-none-any.whl", data)
    with pytest.raises(ModelError, match=error):
        fetch(wheel)
    assert leftovers(cache) == []  # nothing unverified is ever left in the cache


def test_a_file_that_is_neither_wheel_nor_model_is_refused(cache: Path, tmp_path: Path) -> None:
    other = tmp_path / "model.onnx"
    other.write_bytes(b"\0" * 1000)
    with pytest.raises(ModelError, match="neither a wheel nor the 8679182-byte smart-turn-v3.2-cpu.onnx"):
        fetch(other)
    assert leftovers(cache) == []


def test_a_corrupt_cached_model_is_refused_and_replaced(
    cache: Path, model_file: Path, no_pip: None
) -> None:
    cache.mkdir()
    (cache / SMART_TURN_V32.name).write_bytes(flipped(model_file.read_bytes()))
    with pytest.raises(ModelError, match=f"refusing to load it; fetch it again with `{FETCH_COMMAND}`"):
        installed()
    assert fetch(model_file) == installed()


def test_a_failed_download_says_how_to_do_it_by_hand(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pip_fails(command: list[str], **kwargs: object) -> None:
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"] and command[-1] == "pipecat-ai==1.14.0"
        raise subprocess.CalledProcessError(1, command, "", "ERROR: Could not find a version (offline)\n")

    monkeypatch.setattr(subprocess, "run", pip_fails)
    with pytest.raises(ModelError) as caught:
        fetch()
    message = str(caught.value)
    assert "Could not find a version (offline)" in message
    assert f"{FETCH_COMMAND} --from <the .whl file>" in message


def test_the_command_line(cache: Path, model_file: Path, tmp_path: Path) -> None:
    env = {**os.environ, "VOICEFLOW_CACHE": str(cache)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VOICEFLOW, "smart-turn", "fetch", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    bad = make_wheel(tmp_path / "bad.whl", flipped(model_file.read_bytes()))
    result = run("--from", str(bad))
    assert result.returncode == 1 and "smart-turn:" in result.stderr and "expected 2bb02631" in result.stderr
    result = run("--from", str(model_file))
    assert result.returncode == 0, result.stderr
    assert str(cache / SMART_TURN_V32.name) in result.stdout and "verified" in result.stdout
