"""What the echo canceller costs per 20 ms caller frame, and how much echo it removes.

    python benchmarks/echo_cancel.py [--runs 7] [--delay 0.15] [--gain -12]

It runs on every frame of every call, so its cost is the figure that matters. Four situations,
each a whole call's worth of frames (an espeak-ng reply of about 6 s, then a second of quiet),
timed frame by frame in CPU time (``thread_time_ns``: what the frame cost this thread, not
the time other processes held the core); each run's median, mean (what a call costs on
average: the path searches included) and p99, then the median of the runs' figures (a shared 2-core machine's load moves them: the load average is printed beside):

* ``idle``: nothing the agent played can still be on the line (the frame is handed back as is);
* ``no echo``: the agent talks, the line brings nothing back (a headset): the path is searched
  for a few times a second until the agent has talked for 2 s, then once a second;
* ``echo``: the agent's voice comes back ``--delay`` s late at ``--gain`` dB over a -65 dBFS
  line: the path is found, then every frame is filtered (the frames of the search included);
* ``echo + caller``: the same with a caller (a pocketsphinx-testdata recording) talking over it.

Echo removed: energy of the echo against what is left of it in the frames after the path is
found (the caller's voice and the line noise, which the canceller must leave, are taken out of
the reckoning).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_fixtures import espeak_pcm, goforward  # noqa: E402 - the tests' real speech
from voiceflow.config.echo import EchoDefence
from voiceflow.frames import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame
from voiceflow.runtime.echo import EchoCanceller

REPLY = (
    "Well, there are many things to say about that. First of all, the weather today is mild. "
    "Second, the trains are running on time."
)


@dataclass
class Run:
    median_us: float
    mean_us: float
    p99_us: float
    removed_db: float | None


def _call(agent: np.ndarray, *, play: bool, echo_gain: float | None, delay: float,
          caller: np.ndarray | None) -> Run:
    canceller = EchoCanceller(EchoDefence())
    total = len(agent) + SAMPLE_RATE
    total -= total % FRAME_SAMPLES
    back = np.zeros(total)
    if echo_gain is not None:
        lag = round(delay * SAMPLE_RATE)
        back[lag : lag + len(agent)] = agent[: total - lag] * 10.0 ** (echo_gain / 20.0)
    voice = np.random.default_rng(5).normal(0.0, 32768 * 10 ** (-65 / 20), total)
    if caller is not None:
        start = 2 * SAMPLE_RATE
        voice[start : start + len(caller)] += caller[: total - start]
    line = np.clip(np.rint(voice + back), -32768, 32767)
    frames = [AudioFrame(line[at : at + FRAME_SAMPLES].astype(np.int16).tobytes(), at / SAMPLE_RATE)
              for at in range(0, total, FRAME_SAMPLES)]
    played = [agent[at : at + FRAME_SAMPLES].astype(np.int16).tobytes() for at in range(0, total, FRAME_SAMPLES)]
    out = np.zeros(total)
    costs: list[int] = []
    for index, frame in enumerate(frames):
        if play and played[index]:
            canceller.played(played[index], frame.t)
        began = time.thread_time_ns()
        cleaned = canceller.clean(frame)
        costs.append(time.thread_time_ns() - began)
        at = index * FRAME_SAMPLES
        out[at : at + FRAME_SAMPLES] = np.frombuffer(cleaned.pcm, dtype=np.int16)
    removed = None
    if echo_gain is not None and canceller.found_at is not None:
        settled = slice(round(canceller.found_at * SAMPLE_RATE), total)
        left = out[settled] - (line[settled] - back[settled])
        removed = 10 * np.log10(float(back[settled] @ back[settled]) / max(float(left @ left), 1e-9))
    costs.sort()
    return Run(statistics.median(costs) / 1000, statistics.fmean(costs) / 1000,
               costs[int(0.99 * (len(costs) - 1))] / 1000, removed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--delay", type=float, default=0.15)
    parser.add_argument("--gain", type=float, default=-12.0)
    args = parser.parse_args()
    agent = np.frombuffer(espeak_pcm(REPLY), dtype=np.int16).astype(np.float64)
    caller = np.frombuffer(goforward(), dtype=np.int16).astype(np.float64)
    cases = {
        "idle": dict(play=False, echo_gain=None, caller=None),
        "no echo": dict(play=True, echo_gain=None, caller=None),
        "echo": dict(play=True, echo_gain=args.gain, caller=None),
        "echo + caller": dict(play=True, echo_gain=args.gain, caller=caller),
    }
    print(f"echo canceller, {len(agent) / SAMPLE_RATE:.1f} s reply + 1 s, echo {args.delay * 1000:.0f} ms "
          f"at {args.gain:g} dB, {args.runs} runs; load average {os.getloadavg()[0]:.2f}")
    print(f"{'case':<14} {'µs/frame p50':>13} {'mean':>8} {'p99':>8} {'echo removed':>13}")
    for name, case in cases.items():
        runs = [_call(agent, delay=args.delay, **case) for _ in range(args.runs)]  # type: ignore[arg-type]
        removed = [run.removed_db for run in runs if run.removed_db is not None]
        shown = f"{statistics.median(removed):.1f} dB" if removed else "-"
        print(f"{name:<14} {statistics.median(r.median_us for r in runs):>13.1f} "
              f"{statistics.median(r.mean_us for r in runs):>8.1f} "
              f"{statistics.median(r.p99_us for r in runs):>8.1f} {shown:>13}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
