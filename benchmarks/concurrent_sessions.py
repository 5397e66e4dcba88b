"""How many calls one process carries: N concurrent sessions on one event loop, real time.

    python benchmarks/concurrent_sessions.py 1 10 50 100

Each session is a full voiceflow session (file transport in real time, real Silero VAD on every
20 ms frame, the turn manager, the reply pipeline with resampling and playout) answering a real
recording. STT, LLM and TTS are the scripted providers from voiceflow.testing (fixed 200 ms /
150 ms / 80 ms delays), so the figures measure the framework's own cost, not model inference:
event-loop lag (how late a 10 ms ticker wakes up: what every caller's audio would suffer),
CPU per call, and mouth-to-ear as measured inside each call.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import yaml

from voiceflow.audio import read_wav
from voiceflow.clock import RealClock
from voiceflow.config.loader import parse_agent
from voiceflow.logging import configure_logging
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import CallResult, Session
from voiceflow.testing import fakes
from voiceflow_file import FileCall, FileTransportConfig

ROOT = Path(__file__).resolve().parent.parent

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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(n: int, caller: bytes) -> dict[str, Any]:
    registry = PluginRegistry(plugins=[fakes])
    agent = parse_agent(yaml.safe_dump(AGENT), "bench.yaml", registry)
    pool = ProviderPool(registry)
    await prepare(agent, pool)
    lags: list[float] = []
    results: list[CallResult] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    async def call(i: int) -> None:
        transport = FileCall(FileTransportConfig(start="immediately", lead_in=0.0, realtime=True), caller)
        transport.call_id = f"bench-{i}"
        try:
            results.append(await Session(agent, pool, transport, RealClock()).run())
        finally:
            transport.close()

    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async with anyio.create_task_group() as calls:
            for i in range(n):
                calls.start_soon(call, i)
        done.set()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    m2e = [t.mouth_to_ear for r in results for t in r.timeline.turns if t.mouth_to_ear is not None]
    lags.sort()
    return {
        "sessions": n,
        "answered": sum(1 for r in results if any(t.outcome == "completed" for t in r.timeline.turns)),
        "wall_s": wall,
        "cpu_ms_per_call_second": 1000 * cpu / (n * wall),
        "loop_lag_p50_ms": 1000 * lags[len(lags) // 2],
        "loop_lag_p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "m2e_p50_ms": 1000 * statistics.median(m2e) if m2e else float("nan"),
        "m2e_max_ms": 1000 * max(m2e) if m2e else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sessions", nargs="*", type=int, default=[1, 10, 50, 100])
    parser.add_argument("--recording", type=Path, default=ROOT / "agents/recordings/capital.wav")
    args = parser.parse_args()
    configure_logging("console", "error")
    caller = read_wav(args.recording)
    header = ("sessions", "answered", "wall_s", "cpu_ms_per_call_second", "loop_lag_p50_ms",
              "loop_lag_p99_ms", "m2e_p50_ms", "m2e_max_ms")
    print("  ".join(header))
    for n in args.sessions:
        row = anyio.run(run, n, caller)
        print("  ".join(f"{row[h]:>{len(h)}.1f}" if isinstance(row[h], float) else f"{row[h]:>{len(h)}}"
                        for h in header))


if __name__ == "__main__":
    main()
