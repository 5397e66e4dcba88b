"""The soak's server: ``voiceflow serve`` in its own process with the soak's agent, and what
can be read of it from outside: /proc (memory, CPU), /metrics, its log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))
RATE = 16_000
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
REPLY = "Going forward ten meters now; tell me when to stop."
MAX_TURNS = 8
"""Lines a call may say (the recogniser's script per call is this long)."""


def agent(callers: int) -> dict[str, Any]:
    """The served agent: what is deployed (agents/cloud.yaml's VAD and turn-taking) with fakes
    for the cloud stages, so the process's own cost is what is measured."""
    return {
        "name": "soak",
        "prompt": {"system": "Be brief.", "greeting": {"text": "Hi, this is Joe. How can I help?"}},
        "transport": {"provider": "websocket"},
        "serving": {"max_sessions": callers + 10},
        "vad": [{"provider": "silero", "threshold": 0.5, "stop_secs": 0.1}],
        "stt": [{"provider": "streaming-stt", "utterances": [["go forward ten meters"]] * MAX_TURNS,
                 "answer_delays": [0.15] * MAX_TURNS}],
        "llm": [{"provider": "soak-llm", "reply": REPLY, "first_token_delay": 0.2, "token_delay": 0.005}],
        "tts": [{"provider": "tone", "first_audio_delay": 0.1, "sample_rate": RATE}],
        "turn_taking": {"endpointing": {"min_silence": 0.4, "max_wait": 2.5, "min_speech": 0.15},
                        "barge_in": {"enabled": True, "min_speech": 0.35}},
    }


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss_mb: float
    cpu_s: float
    loop_cpu_s: float
    machine: tuple[int, int]
    """(busy, total) ticks of every core together."""
    own_cpu_s: float
    live: int
    learned_limit: int | None = None
    """The server's learned call limit (/readyz) at the sample, if it had one."""


def proc_cpu(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, fields 14 and 15 of proc(5)


def machine_ticks() -> tuple[int, int]:
    counts = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(counts) - counts[3] - counts[4], sum(counts)


class Server:
    """``voiceflow serve`` in its own process, its output in a file (a pipe nobody reads would
    stall it)."""

    def __init__(self, agent_file: Path, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.log = log
        env = {**os.environ, **(extra_env or {}),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))}
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [VOICEFLOW, "serve", str(agent_file), "--port", "0", "--plugin", "voiceflow.testing.fakes",
                 "--plugin", "soak_llm", "--log-level", "warning", "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while (found := re.search(r"listening on (http://\S+)", log.read_text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise SystemExit(f"voiceflow serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.base = found.group(1)
        while self.get("/readyz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise SystemExit(f"voiceflow serve never became ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    @property
    def ws_url(self) -> str:
        return "ws" + self.base.removeprefix("http") + "/agents/soak/ws"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def sample(self, t: float, live: int) -> Sample:
        pid = self.process.pid
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
        return Sample(t, rss, proc_cpu(f"/proc/{pid}/stat"), proc_cpu(f"/proc/{pid}/task/{pid}/stat"),
                      machine_ticks(), proc_cpu("/proc/self/stat"), live, self.learned_limit())

    def learned_limit(self) -> int | None:
        status, body = self.get("/readyz")
        try:
            limit = json.loads(body).get("learned_limit") if status in (200, 503) else None
        except ValueError:
            return None
        return limit if isinstance(limit, int) else None

    def drain(self, timeout: float = 120) -> int | None:
        """SIGTERM, as Kubernetes does; the exit status, or None if it did not exit in time."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


def server_metrics(text: str) -> dict[str, defaultdict[str, float]]:
    """The counters the soak checks, from the server's Prometheus text, summed by their one
    interesting label."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {"voiceflow_calls_started": "agent", "voiceflow_calls_ended": "outcome",
              "voiceflow_calls_refused": "reason", "voiceflow_turns": "outcome",
              "voiceflow_errors": "kind", "voiceflow_mouth_to_ear_seconds": ""}
    found: dict[str, defaultdict[str, float]] = {name: defaultdict(float) for name in wanted}
    for family in text_string_to_metric_families(text):
        if family.name not in wanted:
            continue
        for s in family.samples:
            if family.name == "voiceflow_mouth_to_ear_seconds":
                if s.name.endswith("_count") or s.name.endswith("_sum"):
                    found[family.name][s.name.rsplit("_", 1)[1]] += s.value
            elif s.name.endswith("_total"):
                found[family.name][s.labels.get(wanted[family.name], "")] += s.value
    return found


def log_level(line: str) -> str:
    """A JSON log line's level; of the rest (the banner, the drain notice), a traceback's lines
    are errors."""
    try:
        entry = json.loads(line)
    except ValueError:
        return "error" if line.startswith("Traceback") or re.match(r"\w+(Error|Exception)\b", line) else "info"
    return str(entry.get("level", "info")) if isinstance(entry, dict) else "info"
