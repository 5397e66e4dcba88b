"""The per-item benchmarks run from their documented commands and print their figures (small
sizes here: the figures themselves are for benchmarks/, not for tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_stream_item_prints_the_chains_cost_per_item() -> None:
    out = _run("benchmarks/stream_item.py", "--items", "2000", "--runs", "1")
    assert re.search(r"bare async for\s+\d+\.\d\d", out)
    chained = re.search(r"through a chain\s+(\d+\.\d\d)\s+\(the chain's own: (-?\d+\.\d\d)\)", out)
    assert chained is not None and float(chained.group(1)) > 0


def test_queue_hop_prints_each_hand_over() -> None:
    out = _run("benchmarks/queue_hop.py", "--tasks", "10", "--items", "20", "--runs", "1")
    for mode in ("timer", "memory-stream", "frame-queue"):
        assert re.search(rf"{mode}\s+\d+\.\d", out), out
