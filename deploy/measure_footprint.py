"""What one call costs a `voiceflow serve` process, to size a pod's resource requests.

    .venv/bin/python deploy/measure_footprint.py 1 10 50
    .venv/bin/python deploy/measure_footprint.py 20 --agent my-agent.yaml --transport websocket

For each count N it starts a fresh `voiceflow serve` (its own process, so nothing the client does
is counted), waits until it is ready, then has N callers dial in at once over the WebSocket
transport, each saying a real recording (agents/recordings/capital.wav) at real time, hearing the
answer at real time and hanging up. It reads the server's CPU time and resident memory from /proc
before, during and after, and prints per N:

* CPU per call: server CPU seconds over call seconds, in millicores (1000 = one core busy), the
  figure for ``resources.requests.cpu`` per call you plan a pod to carry;
* memory: resident set when idle (every model loaded), at the peak, and the peak's growth per call;
* mouth-to-ear p50 as the callers heard it, to see when the process stops keeping up.

Without ``--agent`` the agent is the built-in one below: real Silero VAD on every frame and
scripted STT/LLM/TTS with cloud-like delays, so the figures are voiceflow's own cost with the
models elsewhere (cloud or model servers). With ``--agent`` the figures include that agent's
providers; for local models, expect them to dominate.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import anyio
import yaml

from voiceflow.audio import read_wav
from voiceflow.testing.ws_caller import Cue, WsCaller, greeting_heard

ROOT = Path(__file__).resolve().parent.parent
VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))
RECORDING = ROOT / "agents" / "recordings" / "capital.wav"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")

AGENT = {
    "name": "footprint",
    "prompt": {"system": "Be brief.", "greeting": {"text": "Hello, how can I help?"}},
    "transport": {"provider": "websocket"},
    "serving": {"max_sessions": 1000},
    "vad": [{"provider": "silero", "stop_secs": 0.2}],
    "stt": [{"provider": "scripted-stt", "lines": ["hello", "what is the capital of france"] * 500, "delay": 0.15}],
    "llm": [{"provider": "scripted-llm", "replies": ["Paris, of course. It has been the capital for ages."],
             "first_token_delay": 0.2, "token_delay": 0.005}],
    "tts": [{"provider": "tone", "first_audio_delay": 0.1}],
}


@dataclass
class Sample:
    cpu: float
    """Seconds of CPU (user + system) the process has used."""
    rss: float
    """Resident memory, MB."""


def sample(pid: int) -> Sample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), after "pid (comm) state"
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return Sample((utime + stime) / TICKS, pages * PAGE / 2**20)


class Server:
    """A `voiceflow serve` subprocess on a free loopback port."""

    def __init__(self, agent: Path, transport: str | None) -> None:
        command = [VOICEFLOW, "serve", str(agent), "--port", "0", "--plugin", "voiceflow.testing.fakes",
                   "--log-level", "warning"]
        if transport:
            command += ["--transport", transport]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        banner = self.process.stdout.readline() + self.process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", banner)
        ws = re.search(r"(ws://\S+)", banner)
        if found is None or ws is None:
            self.process.kill()
            raise SystemExit(f"voiceflow serve did not start: {banner}")
        self.base, self.ws_url = found.group(1), ws.group(1)
        deadline = time.monotonic() + 300
        while not self._ready():
            if time.monotonic() > deadline:
                raise SystemExit("voiceflow serve never became ready")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/readyz", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


async def measure(n: int, agent: Path, transport: str | None, pcm: bytes) -> dict[str, float]:
    server = Server(agent, transport)
    try:
        time.sleep(1.0)  # let start-up work settle before the idle reading
        idle = sample(server.process.pid)
        peak = idle.rss
        seconds: list[float] = []
        m2e: list[float] = []

        async def caller(index: int) -> None:
            await anyio.sleep(index * 0.05)  # dial within a few seconds, not in one instant
            started = time.monotonic()
            report = await WsCaller(server.ws_url, [Cue(pcm, when=greeting_heard)], max_seconds=60).run()
            seconds.append(time.monotonic() - started)
            m2e.extend(t["mouth_to_ear_ms"] for t in report.turns_ended("reply") if t.get("mouth_to_ear_ms"))

        async def watch(done: anyio.Event) -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, sample(server.process.pid).rss)
                await anyio.sleep(0.2)

        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, done)
            async with anyio.create_task_group() as callers:
                for index in range(n):
                    callers.start_soon(caller, index)
            done.set()
        busy = sample(server.process.pid).cpu - idle.cpu
    finally:
        server.stop()
    return {
        "calls": n,
        "millicores_per_call": 1000 * busy / sum(seconds),
        "idle_mb": idle.rss,
        "peak_mb": peak,
        "mb_per_call": (peak - idle.rss) / n,
        "m2e_p50_ms": statistics.median(m2e) if m2e else float("nan"),
        "call_seconds_mean": statistics.mean(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("counts", nargs="+", type=int, help="Concurrent calls, one run each.")
    parser.add_argument("--agent", type=Path, help="An agent file (default: Silero + scripted providers).")
    parser.add_argument("--transport", help="Serve the agent on this transport (default: websocket for --agent).")
    args = parser.parse_args()
    pcm = read_wav(RECORDING)
    with tempfile.TemporaryDirectory() as folder:
        agent = args.agent
        transport = args.transport or ("websocket" if agent is not None else None)
        if agent is None:
            agent = Path(folder) / "footprint.yaml"
            agent.write_text(yaml.safe_dump(AGENT), encoding="utf-8")
        print(f"{'calls':>5} {'mCPU/call':>9} {'idle MB':>8} {'peak MB':>8} {'MB/call':>8} {'m2e p50':>8} {'call s':>6}")
        for n in args.counts:
            row = anyio.run(measure, n, agent, transport, pcm)
            print(f"{n:>5} {row['millicores_per_call']:>9.1f} {row['idle_mb']:>8.0f} {row['peak_mb']:>8.0f} "
                  f"{row['mb_per_call']:>8.2f} {row['m2e_p50_ms']:>6.0f}ms {row['call_seconds_mean']:>6.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
