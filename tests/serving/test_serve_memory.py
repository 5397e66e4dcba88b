"""A serving process's housekeeping: its event loop (uvloop), the GIL handed over quickly, the
collector settled once the agents are loaded, and the malloc heap trimmed on a period
(docs/deployment.md, "The serving process")."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from serving.serve_process import ServeProcess, agent_file

from voiceflow.serving.memory import YOUNG_THRESHOLD, FullCollector, HeapTrimmer, malloc_trim
from voiceflow.serving.server import GIL_SWITCH_INTERVAL, quick_gil_handoff

pytestmark = pytest.mark.anyio


def events(output: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in output.splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


def test_serve_settles_the_collector_once_loaded_collects_and_trims_on_a_clock(tmp_path: Path) -> None:
    options = ("--log-level", "debug", "--trim-heap-every", "0.2", "--collect-every", "0.2")
    with ServeProcess(agent_file(tmp_path), options=options) as server:
        anyio.run(anyio.sleep, 1.0)
        server.signal()
        assert server.wait() == 0, server.output[-3000:]
    settled = events(server.output, "collector settled")
    assert len(settled) == 1
    # Everything the loaded process holds (modules, models, configuration) is frozen.
    assert int(settled[0]["frozen"]) > 10_000  # type: ignore[call-overload]
    assert settled[0]["thresholds"] == [YOUNG_THRESHOLD, 20, 50]
    assert len(events(server.output, "heap trimmed")) >= 2
    collections = events(server.output, "full collection")
    assert len(collections) >= 2 and all(0 <= float(c["pause_ms"]) < 1000 for c in collections)  # type: ignore[arg-type]
    # The calls run on uvloop (a dependency of voiceflow where it exists), and the VAD's worker
    # thread gets the GIL back within half a millisecond.
    listening = events(server.output, "listening")
    assert [event["loop"] for event in listening] == ["uvloop"]
    assert [event["gil_switch_interval"] for event in listening] == [pytest.approx(GIL_SWITCH_INTERVAL)]


def test_without_settling_the_collector_and_the_gil_both_are_left_alone(tmp_path: Path) -> None:
    options = ("--log-level", "debug", "--no-settle-gc", "--gil-switch-interval", "0", "--collect-every", "0")
    with ServeProcess(agent_file(tmp_path), options=options) as server:
        anyio.run(anyio.sleep, 0.5)
        server.signal()
        assert server.wait() == 0, server.output[-3000:]
    assert events(server.output, "collector settled") == []
    assert events(server.output, "full collection") == []
    python_default = 0.005
    assert [event["gil_switch_interval"] for event in events(server.output, "listening")] == [
        pytest.approx(python_default)]


def test_the_quick_gil_handoff_is_undone_on_the_way_out() -> None:
    before = sys.getswitchinterval()
    with quick_gil_handoff(0.0002):
        assert sys.getswitchinterval() == pytest.approx(0.0002)
    assert sys.getswitchinterval() == before
    with quick_gil_handoff(None):
        assert sys.getswitchinterval() == before


def test_settling_freezes_what_exists_and_raises_the_young_threshold() -> None:
    """In a child interpreter: the test process's own collector must not be changed."""
    code = ("import gc; from voiceflow.serving.memory import settle_after_start; "
            "before = gc.get_freeze_count(); settle_after_start(); "
            "print('counts', before, gc.get_freeze_count(), *gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after, young, *_ = map(int, out[out.index("counts") :].split()[1:])
    assert before == 0 and after > 1_000 and young == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("kind", ["trimmer", "collector"])
async def test_the_trimmer_and_the_collector_work_on_their_period(kind: str) -> None:
    calls: list[float] = []

    def work() -> int:
        calls.append(time.monotonic())
        return 1

    keeper = HeapTrimmer(0.05, trim=work) if kind == "trimmer" else FullCollector(0.05, collect=work)
    with anyio.move_on_after(0.5):
        await keeper.run()
    done = keeper.trims if isinstance(keeper, HeapTrimmer) else keeper.passes
    assert done == len(calls) >= 3
    assert all(b - a >= 0.04 for a, b in zip(calls, calls[1:], strict=False))


def test_the_c_library_trim_gives_freed_memory_back() -> None:
    """In a child interpreter: 200 MB of small objects freed stay in the heap until trimmed."""
    if malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    code = """
import anyio
from voiceflow.serving.memory import HeapTrimmer
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20
keep = []
blocks = []
for i in range(100_000):
    blocks.append(bytearray(2000))  # malloc, not pymalloc (which takes 512 bytes and less)
    if i % 250 == 0:
        keep.append(bytearray(3000))  # live blocks all through the heap: freeing alone cannot shrink it
del blocks
before = rss()
anyio.run(HeapTrimmer(1.0).trim_once)
print("rss", before, rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after = map(int, out[out.index("rss") :].split()[1:])
    assert before - after >= 100, (before, after)


def test_the_collector_reports_each_pause_so_the_lag_probe_does_not_take_it_for_overload() -> None:
    paused: list[float] = []
    collector = FullCollector(60, collect=lambda: time.sleep(0.05) or 0, on_pause=paused.append)
    held = collector.collect_once()
    assert paused == [held] and held >= 0.05


def test_a_trimmer_and_a_collector_need_a_positive_period() -> None:
    with pytest.raises(ValueError, match="positive"):
        HeapTrimmer(0)
    with pytest.raises(ValueError, match="positive"):
        FullCollector(0)


def test_a_full_pass_frees_a_cycle_that_outlived_the_young_generation() -> None:
    """In a child interpreter, settled as a server is: a cycle promoted past the young generation
    (as a call's connection is, living longer than a young pass) waits for a full pass."""
    code = """
import gc, weakref
from voiceflow.serving.memory import FullCollector, settle_after_start
settle_after_start()
class Node: pass
a, b = Node(), Node(); a.other, b.other = b, a
gone = weakref.ref(a)
gc.collect(0); gc.collect(1)  # alive through a young and a middle pass: now in the oldest generation
del a, b
for _ in range(50): gc.collect(1)  # the passes that would come on their own do not free it
print("after young passes", gone() is None)
FullCollector(60).collect_once()
print("after a full pass", gone() is None)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "after young passes False" in out and "after a full pass True" in out, out
