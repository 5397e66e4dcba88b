"""Soak: many WebSocket callers for many minutes against one ``voiceflow serve`` process.

    .venv/bin/python benchmarks/soak.py                          # 200 callers, 10 minutes
    .venv/bin/python benchmarks/soak.py --callers 10 --minutes 1 # a smoke run

It starts a real ``voiceflow serve`` (its own process, on 127.0.0.1, a free port) with an agent
that has the deployed VAD (Silero, agents/cloud.yaml's settings) and fake STT/LLM/TTS with fixed
delays (STT final 150 ms after finalize, first word 200 ms later, then a word every 5 ms, first
audio 100 ms after the text; issue 9's figures), and from this process has ``--callers``
callers (:class:`voiceflow.testing.ws_caller.WsCaller`) dial in over real WebSockets. Each says a
real recording (pocketsphinx-testdata's goforward.raw) at real time in 20 ms frames once the
greeting is over, listens to the reply, says it again, and hangs up after 2-4 replies; then
pauses and calls again. Callers dial in over the first ``--ramp`` seconds and then call at random
lengths and pauses, so calls start and end continuously until ``--minutes`` is over; calls in
progress then have ``--grace`` seconds to finish, and the server is drained (SIGTERM) and must
exit 0.

Recorded per call: connected, refused or dropped (ended without the caller or the agent hanging
up normally), every turn's mouth-to-ear as the caller hears it (from the recording's last voiced
sample, on the frame schedule, to the first agent audio received) and as the server measured it;
every ``--sample-seconds``: the server's RSS and CPU (from /proc), the machine's, and this
process's own (the callers share the machine's cores with the server).

Targets (exit status 1 if one is missed): no call dropped, refused or unfinished, every reply's mouth-to-ear
recorded, the server drained cleanly and its own counters agree, and flat memory: the
least-squares slope of the server's RSS from ``--warmup`` to the end of the load at most
``--max-slope`` MB per minute (docs/deployment.md, "Soak test", says why 1). ``--max-m2e-p95``
adds a latency budget.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import numpy as np
import yaml
from soak_caller import RATE, RECORDING, CallRecord, Recording, load_recording, one_call
from soak_server import MAX_TURNS, Sample, Server, agent, log_level, server_metrics

# --- the soak -----------------------------------------------------------------------------------


@dataclass
class Soak:
    records: list[CallRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    """How late this process's 50 ms ticker woke (is the callers' side keeping real time?)."""
    live: int = 0
    load_end: float = 0.0
    metrics: dict[str, defaultdict[str, float]] = field(default_factory=dict)
    metrics_status: int = 0
    exit_status: int | None = None


async def drive(server: Server, args: argparse.Namespace, recording: Recording) -> Soak:
    soak = Soak()
    t0 = anyio.current_time()
    duration = args.minutes * 60
    low, high = args.turns
    done, over = anyio.Event(), anyio.Event()

    async def slot(index: int) -> None:
        rng = random.Random(args.seed * 100_003 + index)
        await anyio.sleep(args.ramp * index / args.callers)
        while anyio.current_time() - t0 < duration:
            soak.live += 1
            try:
                soak.records.append(await one_call(server.ws_url, index, rng.randint(low, high), recording, t0,
                                                   args.call_limit, over))
            finally:
                soak.live -= 1
            with anyio.move_on_after(rng.uniform(*args.pause)):
                await over.wait()

    async def sampler() -> None:
        told = 0
        while not done.is_set():
            sample = await anyio.to_thread.run_sync(server.sample, anyio.current_time() - t0, soak.live)
            soak.samples.append(sample)
            if sample.t >= 60 * (told + 1):  # a word a minute, so a long soak is seen to be alive
                told += 1
                statuses = Counter(r.status for r in soak.records)
                print(f"  {told:3d} min: {sample.live} calls live, {len(soak.records)} over ({dict(statuses)}), "
                      f"server RSS {sample.rss_mb:.1f} MB, load average {os.getloadavg()[0]:.2f}", flush=True)
            with anyio.move_on_after(args.sample_seconds):
                await done.wait()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.05)
            soak.lags.append(time.perf_counter() - before - 0.05)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sampler)
        tg.start_soon(ticker)
        async with anyio.create_task_group() as callers:
            for index in range(args.callers):
                callers.start_soon(slot, index)
            await anyio.sleep(duration)
            soak.load_end = anyio.current_time() - t0
            soak.samples.append(server.sample(soak.load_end, soak.live))
            with anyio.move_on_after(args.grace):
                while soak.live:
                    await anyio.sleep(0.1)
            over.set()
        soak.samples.append(server.sample(anyio.current_time() - t0, 0))
        soak.metrics_status, text = await anyio.to_thread.run_sync(server.get, "/metrics")
        if soak.metrics_status == 200:
            soak.metrics = server_metrics(text)
        done.set()
    return soak


# --- figures and verdicts -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute; NaN for fewer than 3."""
    if len(points) < 3:
        return float("nan")
    t, y = np.array(points).T
    return float(np.polyfit(t / 60, y, 1)[0])


def rss_at(samples: Sequence[Sample], t: float) -> float:
    return min(samples, key=lambda s: abs(s.t - t)).rss_mb


def limit_at(samples: Sequence[Sample], t: float) -> str:
    """The server's learned call limit at the sample nearest ``t`` ("-": none learned)."""
    limit = min(samples, key=lambda s: abs(s.t - t)).learned_limit
    return "-" if limit is None else str(limit)


def cpu_between(samples: Sequence[Sample], start: float, end: float) -> dict[str, float]:
    """Shares of one core (server, its event-loop thread, this process) and of the whole
    machine (every core, other people's work included) between two sample times."""
    inside = [s for s in samples if start <= s.t <= end]
    if len(inside) < 2 or inside[-1].t <= inside[0].t:
        return {"server": float("nan"), "loop": float("nan"), "callers": float("nan"), "machine": float("nan")}
    a, b = inside[0], inside[-1]
    wall = b.t - a.t
    return {
        "server": 100 * (b.cpu_s - a.cpu_s) / wall,
        "loop": 100 * (b.loop_cpu_s - a.loop_cpu_s) / wall,
        "callers": 100 * (b.own_cpu_s - a.own_cpu_s) / wall,
        "machine": 100 * (b.machine[0] - a.machine[0]) / max(1, b.machine[1] - a.machine[1]),
    }


def ms(value: float) -> str:
    return "   -" if value != value else f"{value:4.0f}"


def report(soak: Soak, args: argparse.Namespace, recording: Recording) -> list[str]:
    """Print the figures; return the targets missed."""
    records, samples = soak.records, soak.samples
    by_status = Counter(r.status for r in records)
    turns = [t for r in records if r.status in ("completed", "agent_hung_up") for t in r.turns]
    heard = [t.heard_ms for t in turns if t.heard_ms is not None]
    served = [t.server_ms for t in turns if t.server_ms is not None]
    outcomes = Counter(t.outcome for r in records for t in r.turns)
    warmup = min(args.warmup, soak.load_end)
    steady = [(s.t, s.rss_mb) for s in samples if warmup <= s.t <= soak.load_end]
    slope = slope_per_minute(steady)
    ended_after = sum(1 for r in records if warmup <= r.ended <= soak.load_end)
    calls_per_min = ended_after / max(1e-9, (soak.load_end - warmup) / 60)

    print(f"\n{args.callers} callers for {soak.load_end / 60:.1f} min (warm-up {warmup:.0f} s); recording "
          f"{len(recording.pcm) / (2 * RATE):.2f} s, speech ends at {recording.speech_end:.2f} s"
          + "".join(f"; serving.{name} {value}" for name, value in args.serving))
    print(f"calls: {len(records)} made, {by_status['completed']} completed, {by_status['agent_hung_up']} "
          f"hung up by the agent, {by_status['dropped']} dropped, {by_status['refused']} refused, "
          f"{by_status['unfinished']} unfinished {args.grace:.0f} s after the end")
    for status in ("dropped", "refused"):
        for reason, n in Counter(r.reason for r in records if r.status == status).most_common(5):
            print(f"  {status}: {n} × {reason}")
    print(f"turns: {len(turns)} replies, outcomes {dict(outcomes)}; mouth-to-ear recorded for {len(heard)} "
          f"(caller) and {len(served)} (server)")

    print("\nminute  calls  ended  dropped  refused  turns  m2e p50  p95  p99 ms (server p50)  RSS MB  "
          "server%  loop%  callers%  machine%  limit")
    bucket = 60.0
    for index in range(max(1, round(soak.load_end / bucket))):
        start, end = index * bucket, min((index + 1) * bucket, soak.load_end)
        values = [t.heard_ms for t in turns if start <= t.at < end and t.heard_ms is not None]
        server_values = [t.server_ms for t in turns if start <= t.at < end and t.server_ms is not None]
        cpu = cpu_between(samples, start, end)
        print(f"{start / 60:6.0f}  {sum(1 for r in records if start <= r.started < end):5d}  "
              f"{sum(1 for r in records if start <= r.ended < end):5d}  "
              f"{sum(1 for r in records if start <= r.ended < end and r.status == 'dropped'):7d}  "
              f"{sum(1 for r in records if start <= r.started < end and r.status == 'refused'):7d}  "
              f"{len(values):5d}  {ms(percentile(values, .5))}  {ms(percentile(values, .95))}  "
              f"{ms(percentile(values, .99))}      ({ms(percentile(server_values, .5))})       "
              f"{rss_at(samples, end):6.1f}  {cpu['server']:7.0f}  {cpu['loop']:5.0f}  {cpu['callers']:8.0f}  "
              f"{cpu['machine']:8.0f}  {limit_at(samples, end)}")
    whole = cpu_between(samples, 0, soak.load_end)
    print(f"overall: mouth-to-ear p50 {ms(percentile(heard, .5))} p95 {ms(percentile(heard, .95))} "
          f"p99 {ms(percentile(heard, .99))} max {ms(max(heard, default=float('nan')))} ms as the callers "
          f"heard it; server's p50 {ms(percentile(served, .5))} p95 {ms(percentile(served, .95))} ms")
    print(f"CPU (% of one core): server {whole['server']:.0f} (event loop {whole['loop']:.0f}), callers "
          f"{whole['callers']:.0f}; machine {whole['machine']:.0f} % busy over {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}; callers' ticker late p50/p99 "
          f"{ms(1000 * percentile(soak.lags, .5))}/{ms(1000 * percentile(soak.lags, .99))} ms")
    print(f"server RSS: {samples[0].rss_mb:.1f} MB at start, {rss_at(samples, warmup):.1f} after warm-up, "
          f"{rss_at(samples, soak.load_end):.1f} at the end of the load, {samples[-1].rss_mb:.1f} once idle; "
          f"slope after warm-up {slope:+.2f} MB/min over {len(steady)} samples "
          + (f" ({1024 * slope / calls_per_min:+.0f} KB per call at {calls_per_min:.0f} calls/min)" if calls_per_min else ""))

    missed = []
    if by_status["dropped"]:
        missed.append(f"{by_status['dropped']} calls dropped")
    if by_status["refused"]:
        missed.append(f"{by_status['refused']} calls refused")
    if by_status["unfinished"]:
        missed.append(f"{by_status['unfinished']} calls not over {args.grace:.0f} s after the end")
    if not turns:
        missed.append("no call completed")
    if len(heard) != len(turns):
        missed.append(f"{len(turns) - len(heard)} replies without a mouth-to-ear")
    if not slope <= args.max_slope:
        missed.append(f"memory not flat: {slope:+.2f} MB/min after warm-up (target ≤ {args.max_slope})")
    if args.max_m2e_p95 is not None and not percentile(heard, .95) <= args.max_m2e_p95:
        missed.append(f"mouth-to-ear p95 {percentile(heard, .95):.0f} ms over {args.max_m2e_p95:.0f}")
    missed += check_server(soak, len(records) - by_status["refused"])
    return missed


def check_server(soak: Soak, connected: int) -> list[str]:
    """The server's own account of the soak must match the callers'."""
    if soak.metrics_status != 200:
        print(f"server metrics: unavailable (/metrics answered {soak.metrics_status})")
        return [] if soak.exit_status == 0 else [f"server exit status {soak.exit_status} after SIGTERM"]
    m = soak.metrics
    count = m["voiceflow_mouth_to_ear_seconds"]["count"]
    mean = 1000 * m["voiceflow_mouth_to_ear_seconds"]["sum"] / max(1, count)
    print(f"server metrics: calls started {sum(m['voiceflow_calls_started'].values()):.0f}, ended "
          f"{dict(m['voiceflow_calls_ended'])}, refused {dict(m['voiceflow_calls_refused'])}, turns "
          f"{dict(m['voiceflow_turns'])}, errors {dict(m['voiceflow_errors'])}; mouth-to-ear {count:.0f} turns, "
          f"mean {mean:.0f} ms; exit status after SIGTERM {soak.exit_status}")
    missed = []
    started = sum(m["voiceflow_calls_started"].values())
    if started != connected:
        missed.append(f"server started {started:.0f} calls, callers connected {connected}")
    abnormal = {k: v for k, v in m["voiceflow_calls_ended"].items() if k not in ("caller_hung_up", "agent_hung_up")}
    if any(abnormal.values()):
        missed.append(f"server ended calls abnormally: {abnormal}")
    if any(m["voiceflow_errors"].values()):
        missed.append(f"server errors: {dict(m['voiceflow_errors'])}")
    if soak.exit_status != 0:
        missed.append(f"server exit status {soak.exit_status} after SIGTERM (0 is a clean drain)")
    return missed


def turns_range(text: str) -> tuple[int, int]:
    """``2-4`` or ``3``."""
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def name_value(text: str) -> tuple[str, str]:
    """``NAME=VALUE``."""
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return name, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=200, help="callers at once (default 200)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long calls keep starting (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds before the memory slope counts "
                        "(default: 2 minutes, or a quarter of a shorter soak)")
    parser.add_argument("--ramp", type=float, default=20.0, help="seconds over which the callers first dial")
    parser.add_argument("--turns", type=turns_range, default=(2, 4), help="replies per call, e.g. 2-4 (default) or 1")
    parser.add_argument("--pause", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"),
                        help="seconds between a caller's calls (default 0.5 3)")
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="how often /proc is read")
    parser.add_argument("--max-slope", type=float, default=1.0, help="flat memory: MB/min after warm-up (1)")
    parser.add_argument("--max-m2e-p95", type=float, help="a mouth-to-ear p95 budget, ms (none by default)")
    parser.add_argument("--call-limit", type=float, default=120.0, help="a call longer than this is dropped")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds calls in progress may take to finish once the soak is over (60)")
    parser.add_argument("--recording", type=Path, default=RECORDING)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-env", type=name_value, action="append", default=[],
                        metavar="NAME=VALUE", help="an environment variable for the server (e.g. allocator settings)")
    parser.add_argument("--serving", type=name_value, action="append", default=[], metavar="NAME=VALUE",
                        help="a serving setting of the agent, as YAML (e.g. max_audio_lag=0.1): to size a "
                        "process with the admission it will run with")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(120.0, args.minutes * 15)
    if not 1 <= args.turns[0] <= args.turns[1] <= MAX_TURNS:
        parser.error(f"--turns: between 1 and {MAX_TURNS}, low-high")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    recording = load_recording(args.recording)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"{time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        agent_file = Path(folder) / "soak.yaml"
        served = agent(args.callers)
        served["serving"].update({name: yaml.safe_load(value) for name, value in args.serving})
        agent_file.write_text(yaml.safe_dump(served), encoding="utf-8")
        server = Server(agent_file, Path(folder) / "server.log", dict(args.server_env))
        try:
            soak = anyio.run(drive, server, args, recording)
        finally:
            status = server.drain() if server.process.poll() is None else server.process.returncode
        soak.exit_status = status
        log = (Path(folder) / "server.log").read_text()
    missed = report(soak, args, recording)
    levels = Counter(log_level(line) for line in log.splitlines())
    print(f"server log: {levels['warning']} warnings, {levels['error'] + levels['critical']} errors")
    for line in [line for line in log.splitlines() if log_level(line) != "info"][:3]:
        print(f"  {line[:300]}")
    print("\n" + ("targets missed: " + "; ".join(missed) if missed else "every target met"), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
