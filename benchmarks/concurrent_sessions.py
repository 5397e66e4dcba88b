"""How many calls one process carries: N concurrent sessions on one event loop, real time.

    python benchmarks/concurrent_sessions.py                 # 1 10 50 100 200 calls, 3 runs each
    python benchmarks/concurrent_sessions.py 1 200 --repeat 5 --vad-workers 1 --vad-gather-ms 1

Each session is a full voiceflow session (file transport in real time, real Silero VAD on every
20 ms frame, the turn manager, the reply pipeline with resampling and playout) answering a real
recording. The calls start spread over one 20 ms frame (``--spread``), as real calls arrive at
random phases of it; with the same recording their turns then end in the same instant, the worst
case for one event loop. A longer ``--spread`` staggers the turns too.
STT, LLM and TTS are the scripted providers from voiceflow.testing (fixed 200 ms / 150 ms / 80 ms
delays), so the figures measure the framework's own cost, not model inference:

- ``lag``: how late a 10 ms ticker wakes up (what every caller's audio suffers), p50 and p99;
- ``vad``: from a caller frame's arrival (the end of the frame, on the call's clock) to the VAD's
  answer for it, p50 and p99 over every frame, and the worst over the frames that carried a speech
  edge (the decision the turn manager waits for); ``late`` is the share of frames answered more
  than one frame (20 ms) after they arrived;
- CPU: the event-loop thread's and the other threads' (VAD workers) share of one core, the whole
  machine's busy share of each core (other jobs included: the machine's load), and the process's
  CPU milliseconds per call-second;
- ``vad_batch``: Silero windows per worker-thread hand-off (how well the calls' windows gather);
- mouth-to-ear as measured inside each call.

Every figure is the median over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import yaml

import voiceflow.runtime.session as session_module
from voiceflow.audio import read_wav
from voiceflow.clock import RealClock, current_clock
from voiceflow.config.loader import parse_agent
from voiceflow.frames import FRAME_SECONDS, AudioFrame, VADEvent
from voiceflow.logging import configure_logging
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import ProviderKind
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import CallResult, Session
from voiceflow.runtime.voice_activity import VoiceActivity
from voiceflow.serving.command import loop_options
from voiceflow.serving.memory import settle_after_start
from voiceflow.testing import fakes
from voiceflow_file import FileCall, FileTransportConfig

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

AGENT = {
    "name": "bench",
    "prompt": {"system": "Be brief."},
    "transport": {"provider": "file"},
    "vad": [{"provider": "silero", "stop_secs": 0.1}],
    "stt": [{"provider": "scripted-stt", "lines": ["what is the capital of france"] * 5, "delay": 0.2}],
    "llm": [{"provider": "scripted-llm", "replies": ["Paris, of course. It has been the capital for ages."],
             "first_token_delay": 0.15, "token_delay": 0.03}],
    "tts": [{"provider": "tone", "first_audio_delay": 0.08}],
}

COLUMNS = (
    ("calls", "{:>5.0f}"), ("answered", "{:>8.0f}"), ("wall_s", "{:>6.1f}"),
    ("lag_p50_ms", "{:>10.2f}"), ("lag_p99_ms", "{:>10.2f}"),
    ("vad_p50_ms", "{:>10.2f}"), ("vad_p99_ms", "{:>10.2f}"), ("vad_edge_max_ms", "{:>15.2f}"),
    ("late_pct", "{:>8.2f}"),
    ("loop_core_pct", "{:>13.0f}"), ("workers_core_pct", "{:>16.0f}"),
    ("machine_core0_pct", "{:>17.0f}"), ("machine_core1_pct", "{:>17.0f}"),
    ("cpu_ms_per_call_s", "{:>17.2f}"), ("vad_batch", "{:>9.1f}"),
    ("m2e_p50_ms", "{:>10.0f}"), ("m2e_max_ms", "{:>10.0f}"),
)


class VadTimings:
    """Arrival-to-answer delay of every caller frame's VAD decision, recorded by a probe that
    stands in for the session's :class:`VoiceActivity` (whichever of its entry points the session
    calls: the synchronous ``process`` or the awaited ``aprocess``)."""

    def __init__(self) -> None:
        self.frames: list[float] = []
        self.edges: list[float] = []

    def record(self, frame: AudioFrame, edge: VADEvent | None) -> None:
        delay = current_clock().now() - (frame.t + frame.duration)
        self.frames.append(delay)
        if edge is not None:
            self.edges.append(delay)

    def install(self) -> Callable[[], None]:
        """Make sessions use the probe; returns the undo."""
        timings = self

        class Probe(VoiceActivity):
            def process(self, frame: AudioFrame) -> VADEvent | None:
                edge = super().process(frame)
                timings.record(frame, edge)
                return edge

            if hasattr(VoiceActivity, "aprocess"):
                async def aprocess(self, frame: AudioFrame) -> VADEvent | None:
                    edge: VADEvent | None = await super().aprocess(frame)  # type: ignore[misc]
                    timings.record(frame, edge)
                    return edge

        session_module.VoiceActivity = Probe  # type: ignore[misc]
        return lambda: setattr(session_module, "VoiceActivity", VoiceActivity)


class CpuMeter:
    """CPU over a span: this process's event-loop thread and its other threads (from
    /proc/self/task), and the whole machine per core (from /proc/stat, other jobs included)."""

    def __init__(self) -> None:
        self._threads = self._thread_ticks()
        self._cores = self._core_ticks()
        self._wall = time.perf_counter()

    @staticmethod
    def _thread_ticks() -> dict[int, int]:
        ticks = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the thread ended meanwhile
            ticks[int(tid)] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    @staticmethod
    def _core_ticks() -> list[tuple[int, int]]:
        """(busy, total) ticks of each core."""
        cores = []
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                counts = [int(v) for v in values]
                idle = counts[3] + counts[4]
                cores.append((sum(counts) - idle, sum(counts)))
        return cores

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self._wall
        now = self._thread_ticks()
        loop = os.getpid()
        spent = {tid: ticks - self._threads.get(tid, 0) for tid, ticks in now.items()}
        figures = {
            "loop_core_pct": 100 * spent.get(loop, 0) / TICKS / wall,
            "workers_core_pct": 100 * sum(t for tid, t in spent.items() if tid != loop) / TICKS / wall,
            "process_cpu_s": sum(spent.values()) / TICKS,
        }
        for i, ((busy0, total0), (busy1, total1)) in enumerate(zip(self._cores, self._core_ticks(), strict=True)):
            if i < 2:
                figures[f"machine_core{i}_pct"] = 100 * (busy1 - busy0) / max(1, total1 - total0)
        return figures


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(n: int, caller: bytes, vad: dict[str, Any], spread: float = FRAME_SECONDS) -> dict[str, float]:
    registry = PluginRegistry(plugins=[fakes])
    # One scripted recogniser serves every call of the process and its lines are shared: give each
    # call its own, or the calls past the first few are answered with the "unclear" re-prompt.
    stt = {**AGENT["stt"][0], "lines": AGENT["stt"][0]["lines"][:1] * (4 * n)}
    settings = {**AGENT, "stt": [stt], "vad": [{**AGENT["vad"][0], **vad}]}
    agent = parse_agent(yaml.safe_dump(settings), "bench.yaml", registry)
    pool = ProviderPool(registry)
    await prepare(agent, pool)
    settle_after_start()  # as `voiceflow serve` does once its agents are loaded
    [silero] = await pool.chain(ProviderKind.VAD, agent.vad)
    batcher = getattr(silero, "batcher", None)
    lags: list[float] = []
    results: list[CallResult] = []
    timings = VadTimings()
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    async def call(i: int) -> None:
        await anyio.sleep(spread * i / n)
        transport = FileCall(FileTransportConfig(start="immediately", lead_in=0.0, realtime=True), caller)
        transport.call_id = f"bench-{i}"
        try:
            results.append(await Session(agent, pool, transport, RealClock()).run())
        finally:
            transport.close()

    undo = timings.install()
    meter, wall0 = CpuMeter(), time.perf_counter()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with anyio.create_task_group() as calls:
                for i in range(n):
                    calls.start_soon(call, i)
            done.set()
    finally:
        undo()
    wall, cpu = time.perf_counter() - wall0, meter.read()
    m2e = [t.mouth_to_ear for r in results for t in r.timeline.turns if t.mouth_to_ear is not None]
    batch = batcher.jobs / max(1, batcher.handoffs) if batcher is not None else float("nan")
    return {
        "calls": n,
        "answered": sum(1 for r in results if any(t.outcome == "completed" for t in r.timeline.turns)),
        "wall_s": wall,
        "lag_p50_ms": 1000 * percentile(lags, 0.5),
        "lag_p99_ms": 1000 * percentile(lags, 0.99),
        "vad_p50_ms": 1000 * percentile(timings.frames, 0.5),
        "vad_p99_ms": 1000 * percentile(timings.frames, 0.99),
        "vad_edge_max_ms": 1000 * max(timings.edges, default=float("nan")),
        "late_pct": 100 * sum(1 for d in timings.frames if d > FRAME_SECONDS) / max(1, len(timings.frames)),
        "cpu_ms_per_call_s": 1000 * cpu["process_cpu_s"] / (n * wall),
        "vad_batch": batch,
        "m2e_p50_ms": 1000 * statistics.median(m2e) if m2e else float("nan"),
        "m2e_max_ms": 1000 * max(m2e) if m2e else float("nan"),
        **{k: v for k, v in cpu.items() if k != "process_cpu_s"},
    }


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(row.get(name, float("nan")) for row in rows) for name, _ in COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sessions", nargs="*", type=int, default=[1, 10, 50, 100, 200])
    parser.add_argument("--repeat", type=int, default=3, help="runs per call count (medians are printed)")
    parser.add_argument("--recording", type=Path, default=ROOT / "agents/recordings/capital.wav")
    parser.add_argument("--spread", type=float, default=FRAME_SECONDS, help="seconds over which the calls start")
    parser.add_argument("--vad-workers", type=int, help="silero workers (default: the provider's)")
    parser.add_argument("--vad-gather-ms", type=float, help="silero gather_ms (default: the provider's)")
    args = parser.parse_args()
    vad = {key: value for key, value in (("workers", args.vad_workers), ("gather_ms", args.vad_gather_ms))
           if value is not None}
    configure_logging("console", "error")
    caller = read_wav(args.recording)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"medians of {args.repeat} runs; calls start over {args.spread} s; silero {vad or 'defaults'}")
    print("  ".join(name for name, _ in COLUMNS), flush=True)
    for n in args.sessions:
        row = medians([anyio.run(run, n, caller, vad, args.spread, backend_options=loop_options())
                        for _ in range(args.repeat)])
        print("  ".join(fmt.format(row[name]) for name, fmt in COLUMNS), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
