"""voiceflow and Pipecat side by side: the same cascade, the same fakes, the same caller, the
same listener, in one invocation.

    .venv/bin/python benchmarks/pipecat_side_by_side/run.py                # 1 10 25 50 100 200 calls, 2 runs each
    .venv/bin/python benchmarks/pipecat_side_by_side/run.py 1 10 --repeat 3
    .venv/bin/python benchmarks/pipecat_side_by_side/run.py --reanalyse /tmp/side-by-side-XXXX

What runs
---------
Each framework carries N concurrent calls in one process (its own driver script:
``voiceflow_side.py`` in voiceflow's venv, ``pipecat_side.py`` in a separate venv holding
``pipecat-ai[silero]==1.14.*``, made on first use under ``~/.cache/voiceflow-bench/pipecat`` or
``--pipecat-venv``; Pipecat is never a dependency of voiceflow). For every call count the two
alternate, voiceflow N, Pipecat N, voiceflow N, ..., ``--repeat`` times each, so a machine that
gets busier or quieter during the run moves both; every figure is the median over the runs.

Each call: the caller (a real recording, Debian's pocketsphinx-testdata ``cards/004.wav``, "five
five", normalised to -3 dBFS) asks, then 2.6 s after the end of its speech says it again over the
agent's reply. Its audio goes in as 20 ms frames at real time. Both frameworks use real Silero VAD
with their default settings (stop window 0.2 s in both), and the same fakes: STT final 150 ms after
the VAD's end of speech, LLM first token 200 ms after the request then 20 tokens 5 ms apart, TTS
first 20 ms of audio 100 ms after its text and the rest at real time (a 440 Hz tone, 0.06 s per
character). The turn ends as soon as the final transcript is in (voiceflow: ``min_silence`` 0.2 s,
transcript rules off; Pipecat: ``SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0)`` instead
of its Smart Turn default). Barge-in is each framework's default (voiceflow holds playout at the
first voiced VAD window, once its echo canceller has found the line brings nothing back, and
cancels after 0.35 s of voiced speech; Pipecat interrupts at its VAD's speech start). Agent audio
leaves each framework's transport on a real-time playout clock (a chunk starts when the previous
one has played); the listener hears it from that moment.

What it prints (milliseconds, p50 and p95 over the calls of a run, median over runs)
------------------------------------------------------------------------------------
* overhead: first agent audio at the listener - the caller's last voiced sample - (stop window
  0.2 s + the fakes' 475 ms: STT 150, LLM 200 + 5 tokens x 5 ms, TTS 100). The last voiced
  sample is measured on the recording (the last 10 ms within 25 dB of its loudest), not by a VAD.
* post-VAD: first agent audio - the framework's end-of-speech edge - 475 ms: the framework's
  own plumbing. The edge is when the turn logic received it (voiceflow: the timeline's
  ``stt_finalize``, stamped as the turn manager acts on the VAD's end; Pipecat: when
  ``VADUserStoppedSpeakingFrame`` reaches the processor after the user aggregator).
* VAD offset: that edge - the last voiced sample - 0.2 s.
* barge-in: the interruption's first voiced sample -> the agent's audio stops at the listener.
* CPU ms/call-s: the process's CPU time per call per second of the run; RSS MB/call: the peak
  resident memory during the calls minus that before them (models loaded, one pipeline built for
  Pipecat), divided by the calls.
* measured: how many calls reached their first agent audio / were audible at the interruption,
  out of N (medians over runs); late ms: the worst delay handing a caller frame to the framework
  (an event loop that cannot keep up shows here first).
* vf/pipecat: voiceflow's figure divided by Pipecat's (below 1: voiceflow is lower).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PIPECAT = "pipecat-ai[silero]==1.14.*"
DEFAULT_VENV = Path.home() / ".cache" / "voiceflow-bench" / "pipecat"


def pipecat_python(venv: Path) -> Path:
    """The Python of a venv holding Pipecat, made if missing. numpy is pinned to what the
    interpreter can install (numpy 2.5 needs Python >= 3.12)."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"making {venv} with {PIPECAT} (once; a few minutes) ...", flush=True)
    numpy = "numpy<2.5" if sys.version_info < (3, 12) else "numpy<3"
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "--python", str(python), PIPECAT, numpy], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PIPECAT, numpy], check=True)
    return python


class CoreMeter:
    """The whole machine's busy share of its cores over a span (other jobs included), and the
    share of that span in which some runnable task waited for a core (the kernel's CPU pressure,
    where it reports one): high pressure means stalls no framework can help."""

    def __init__(self) -> None:
        self._start = self._ticks()
        self._stalled = self._pressure()
        self._wall = time.perf_counter()

    @staticmethod
    def _pressure() -> float:
        try:
            line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        except (OSError, IndexError):
            return math.nan
        return int(line.rsplit("total=", 1)[1]) / 1e6

    def pressure_pct(self) -> float:
        return 100 * (self._pressure() - self._stalled) / max(1e-9, time.perf_counter() - self._wall)

    @staticmethod
    def _ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    def busy_pct(self) -> float:
        busy, total = self._ticks()
        return 100 * (busy - self._start[0]) / max(1, total - self._start[1])


def run_side(python: Path, script: str, calls: int, caller: Path, out: Path, timeout: float) -> None:
    """One driver run; its log goes beside its records, and is shown if it fails."""
    log = out.with_suffix(".log")
    with log.open("w") as stderr:
        done = subprocess.run([str(python), str(HERE / script), str(calls), str(caller), str(out)],
                              timeout=timeout, stdout=stderr, stderr=stderr, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{script} {calls} failed ({done.returncode}); its log ({log}) ends:\n"
                         + "\n".join(log.read_text().splitlines()[-20:]))


def summarise(folder: Path) -> str:
    """The table from a folder of saved runs (``scenario.json`` and ``<framework>-<calls>-<run>.json``)."""
    scenario = common.Scenario(**json.loads((folder / "scenario.json").read_text()))
    runs: dict[int, dict[str, list[dict[str, float]]]] = {}
    for path in sorted(folder.glob("*-*-*.json")):
        result = json.loads(path.read_text())
        runs.setdefault(result["calls"], {}).setdefault(result["framework"], []).append(
            common.run_figures(result, scenario))
    rows = {calls: {name: common.medians(rows) for name, rows in sides.items()} for calls, sides in runs.items()}
    return common.table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calls", nargs="*", type=int, default=[1, 10, 25, 50, 100, 200])
    parser.add_argument("--repeat", type=int, default=2, help="runs per framework and call count")
    parser.add_argument("--pipecat-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--recording", type=Path, default=common.RECORDING)
    parser.add_argument("--out", type=Path, help="folder for the per-run JSON records (default: a new temp folder)")
    parser.add_argument("--only", choices=("voiceflow", "pipecat"), help="run one framework alone")
    parser.add_argument("--reanalyse", type=Path, help="print the table of a folder of saved runs, run nothing")
    args = parser.parse_args()
    if args.reanalyse:
        print(summarise(args.reanalyse))
        return

    out = args.out or Path(tempfile.mkdtemp(prefix="side-by-side-"))
    out.mkdir(parents=True, exist_ok=True)
    pcm, scenario = common.build_caller(common.read_recording(args.recording))
    caller = out / "caller.wav"
    common.write_wav(caller, pcm)
    (out / "scenario.json").write_text(json.dumps(scenario.as_dict()))
    sides = {"voiceflow": (Path(sys.executable), "voiceflow_side.py")}
    if args.only != "voiceflow":
        sides["pipecat"] = (pipecat_python(args.pipecat_venv), "pipecat_side.py")
    if args.only == "pipecat":
        del sides["voiceflow"]
    version = subprocess.run([str(sides["pipecat"][0]), "-c", "import importlib.metadata as m; "
                              "print(m.version('pipecat-ai'), m.version('numpy'))"],
                             capture_output=True, text=True, check=True).stdout.split() if "pipecat" in sides else []
    print(f"Python {sys.version.split()[0]} ({sys.executable}): {common.python_speed():.0f} µs per reference "
          "loop (common.python_speed: lower is faster; both frameworks run on this interpreter)", flush=True)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          + (f"pipecat-ai {version[0]} (numpy {version[1]}); " if version else "")
          + f"{args.repeat} runs per framework and call count; records in {out}", flush=True)
    cores, wall0 = CoreMeter(), time.perf_counter()
    for calls in args.calls:
        for run in range(args.repeat):
            for name, (python, script) in sides.items():
                started, busy = time.perf_counter(), CoreMeter()
                target = out / f"{name}-{calls}-{run}.json"
                run_side(python, script, calls, caller, target, timeout=scenario.duration + 300)
                print(f"  {name:<9} {calls:>4} calls, run {run + 1}: {time.perf_counter() - started:5.1f} s, "
                      f"cores {busy.busy_pct():3.0f} % busy, CPU pressure {busy.pressure_pct():3.0f} %, "
                      f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{time.perf_counter() - wall0:.0f} s in all; the machine's cores were {cores.busy_pct():.0f} % busy "
          f"(both frameworks and everything else), some task waited for a core {cores.pressure_pct():.0f} % "
          f"of the time; load average {os.getloadavg()[0]:.2f} at the end\n")
    print(summarise(out))


if __name__ == "__main__":
    main()
