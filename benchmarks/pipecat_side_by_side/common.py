"""What both sides of the side-by-side benchmark share: the caller's audio, the listener that
records what leaves each framework's transport, and the arithmetic that turns those records into
figures.

It imports nothing but the standard library and numpy, because it runs in two interpreters:
voiceflow's venv and the separate one that holds pipecat-ai. Keeping the measuring code
identical on both sides is the point: only the framework between the caller and the listener
differs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import threading
import time
import wave
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16_000
FRAME = 0.02
"""The caller's audio goes in as 20 ms frames of PCM16 at 16 kHz on both sides."""

RECORDING = Path("/usr/share/pocketsphinx/test/data/cards/004.wav")
"""A man saying "five five" (Debian's pocketsphinx-testdata, 16 kHz): real speech whose end is a
clean decay, so its last voiced sample is unambiguous. (goforward.raw ends on a faint "s" that
both Silero setups treat as silence: against it, both VADs "decide" ~150-200 ms early.)"""

STOP_WINDOW = 0.2
"""Both VADs are set (by their defaults) to declare the end of speech after 0.2 s of silence."""

STT_DELAY = 0.15
LLM_FIRST_TOKEN = 0.2
LLM_TOKEN_GAP = 0.005
TTS_FIRST_AUDIO = 0.1
TTS_CHUNK = 0.02
TTS_RATE = 24_000
TTS_SECONDS_PER_CHAR = 0.06
TRANSCRIPT = "five five"
REPLY = ("Five five is now saved. I will stop there and then wait for your next instruction "
         "before doing anything else.")
"""20 tokens (words). The first sentence is 5 of them; either framework knows it is complete when
the sixth arrives (a full stop is only a sentence end once the next word shows it is not "3.5" or
"Dr."), so the first clause reaches the voice at best LLM_FIRST_TOKEN + 5 token gaps after the
request."""

FIRST_SENTENCE_TOKENS = 5
FIXED_DELAYS = STT_DELAY + LLM_FIRST_TOKEN + FIRST_SENTENCE_TOKENS * LLM_TOKEN_GAP + TTS_FIRST_AUDIO
"""What the fakes make any framework wait after the VAD's end edge before audio can leave: 475 ms."""

VOICED_LEVEL = 200
"""A played chunk whose largest sample is above this is agent audio (the fakes' tone peaks at
~9800; silence is 0)."""
GAP_MERGE = 0.1
"""Agent audio interrupted for less than this (a late chunk) counts as one stretch of speech."""


# -- the caller -------------------------------------------------------------------------------

def speech_bounds(samples: np.ndarray, below_peak_db: float = 25.0) -> tuple[float, float]:
    """(start, end) of the speech in a clean recording, in seconds: the first and last 10 ms
    window within ``below_peak_db`` of the loudest one. The ground truth both frameworks' VAD
    timing is measured against, so it is computed from the audio, never from either VAD."""
    hop = RATE // 100
    usable = len(samples) - len(samples) % hop
    energy = np.square(samples[:usable].astype(np.float64).reshape(-1, hop)).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (-below_peak_db / 10.0))
    return float(loud[0] * hop / RATE), float((loud[-1] + 1) * hop / RATE)


@dataclass(frozen=True)
class Scenario:
    """The caller: a question, a pause while the agent answers, then an interruption."""

    speech_end: float
    """The question's last voiced sample, seconds from the start of the caller's audio."""
    interrupt_onset: float
    """The interruption's first voiced sample."""
    duration: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def read_recording(path: Path) -> np.ndarray:
    """A 16 kHz mono PCM16 WAV (or headerless .raw) as samples."""
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2")
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{path}: expected 16 kHz mono PCM16, got {wav.getframerate()} Hz, "
                             f"{wav.getnchannels()} channel(s), {8 * wav.getsampwidth()}-bit")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)


def build_caller(recording: np.ndarray, interrupt_after: float = 2.6, tail: float = 2.0) -> tuple[bytes, Scenario]:
    """The caller's audio, normalised to a -3 dBFS peak (a quiet recording would otherwise fall
    under Pipecat's default ``min_volume`` and test its level gate, not its latency): the
    recording, then the same recording again, placed so its speech starts ``interrupt_after``
    seconds after the first one's speech ended (while the agent's ~6 s reply is playing), then
    ``tail`` seconds of silence (the calls hang up when the audio ends: the tail gives a
    framework that has fallen behind time to show how far)."""
    gain = 10 ** (-3 / 20) * 32767 / max(1, int(np.abs(recording.astype(np.int32)).max()))
    speech = np.clip(recording.astype(np.float64) * gain, -32768, 32767).astype("<i2")
    start, end = speech_bounds(speech)
    onset = end + interrupt_after
    second_at = round((onset - start) * RATE)
    total = second_at + len(speech) + round(tail * RATE)
    total += -total % round(FRAME * RATE)
    caller = np.zeros(total, dtype="<i2")
    caller[: len(speech)] = speech
    caller[second_at : second_at + len(speech)] = speech
    return caller.tobytes(), Scenario(end, second_at / RATE + start, total / RATE)


def frames(pcm: bytes) -> list[bytes]:
    size = round(FRAME * RATE) * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def tone(seconds: float, rate: int = TTS_RATE) -> np.ndarray:
    """The fake voice: a 440 Hz tone (PCM16) as long as the text would take to say. A slice of
    one tone made once per rate: making 5 s of it costs ~2 ms, which 200 calls asking for their
    next clause in the same instant would pay on the event loop (the fake's cost, not the
    framework's)."""
    return _tone(rate)[: round(seconds * rate)]


@functools.lru_cache(maxsize=4)
def _tone(rate: int, seconds: float = 20.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    samples.flags.writeable = False
    return samples


# -- the listener -----------------------------------------------------------------------------

@dataclass
class Listener:
    """One call's listener-side record. Times are seconds on the event loop's monotonic clock
    until :meth:`as_record` makes them relative to ``t0``, the start of the caller's audio."""

    t0: float | None = None
    agent: list[list[float]] = field(default_factory=list)
    """Stretches of agent audio as played: [start, end]."""
    vad_ends: list[float] = field(default_factory=list)
    """When the framework's turn logic received an end-of-speech edge."""
    caller_late: float = 0.0
    """The latest a caller frame was handed to the framework after it had fully arrived."""
    caller_late_at: float = 0.0
    """When that frame was due (a stall shared by every call shows as one moment)."""

    def caller_frame(self, due: float, now: float) -> None:
        if now - due > self.caller_late:
            self.caller_late, self.caller_late_at = now - due, due

    def played(self, start: float, pcm: bytes, rate: int) -> None:
        """A chunk left the transport at ``start`` (when a sound card would start playing it)."""
        samples = np.frombuffer(pcm, dtype="<i2")
        if not len(samples) or int(np.abs(samples.astype(np.int32)).max()) <= VOICED_LEVEL:
            return
        end = start + len(samples) / rate
        if self.agent and start - self.agent[-1][1] <= GAP_MERGE:
            self.agent[-1][1] = max(self.agent[-1][1], end)
        else:
            self.agent.append([start, end])

    def vad_end(self, t: float) -> None:
        self.vad_ends.append(t)

    def as_record(self) -> dict[str, Any]:
        t0 = self.t0 if self.t0 is not None else 0.0
        return {
            "agent": [[round(a - t0, 4), round(b - t0, 4)] for a, b in self.agent],
            "vad_ends": [round(t - t0, 4) for t in self.vad_ends],
            "caller_late": round(self.caller_late, 4),
            "caller_late_at": round(self.caller_late_at - t0, 4),
        }


def python_speed() -> float:
    """Microseconds this interpreter takes for a fixed piece of pure Python (the sum of the squares
    of 1000 integers, best of 7 repeats): printed beside the figures, a rough yardstick of how fast
    the machine (and the build of CPython) was when they were measured. Only rough: the calls
    spend much of their time in C (numpy, onnxruntime, the event loop), and the same machine's
    speed can also change from one minute to the next (its neighbours), which this cannot see.
    """
    import timeit

    numbers = list(range(1000))
    timer = timeit.Timer(lambda: sum(i * i for i in numbers))
    loops = 200
    return 1e6 * min(timer.repeat(repeat=7, number=loops)) / loops


class ProcessMeter:
    """CPU time and resident memory of this process while the calls run: RSS is sampled every
    50 ms from /proc/self/status by a thread (a peak between samples may be missed; the calls
    hold their memory for seconds, so it is not), and compared with the RSS when the meter was
    made."""

    def __init__(self) -> None:
        self.base_rss = self._rss()
        self.peak_rss = self.base_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.begin()

    def begin(self) -> None:
        """Count CPU time and the span from now (memory is counted from the meter's start)."""
        self._times = os.times()
        self._wall = time.perf_counter()

    @staticmethod
    def _rss() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_rss = max(self.peak_rss, self._rss())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        now = os.times()
        return {
            "wall_s": time.perf_counter() - self._wall,
            "cpu_s": (now.user - self._times.user) + (now.system - self._times.system),
            "rss_base_mb": self.base_rss,
            "rss_peak_mb": max(self.peak_rss, self._rss()),
        }


def write_result(path: Path, framework: str, calls: int, meter: dict[str, float],
                 records: Sequence[dict[str, Any]], **extra: Any) -> None:
    path.write_text(json.dumps({"framework": framework, "calls": calls, **meter, **extra,
                                "records": list(records)}, indent=1))


# -- the figures ------------------------------------------------------------------------------

def call_figures(record: dict[str, Any], scenario: Scenario) -> dict[str, float | None]:
    """One call's figures, in milliseconds (``None``: the call did not get that far in time):

    * ``overhead``: first agent audio at the listener - the question's last voiced sample -
      (stop window + the fakes' fixed delays);
    * ``post_vad``: first agent audio - the framework's end-of-speech edge - the fixed delays;
    * ``vad_offset``: the end-of-speech edge - the last voiced sample - the stop window;
    * ``barge_in``: the interruption's first voiced sample -> the reply's audio stops for good
      at the listener: the end of its last stretch that began before the interruption's own
      end-of-speech edge (only for calls whose reply had begun before the caller cut in; a
      reply that stutters under load is not taken for one that stopped).

    The question's end-of-speech edge is the first after its last voiced sample (a pause inside
    the question ends before it). Its reply's first audio is the first after that sample and
    before the interruption's own end-of-speech edge (the earliest a reply to the interruption
    could start): on an overloaded machine the reply may come after the caller cut in, and its
    lateness is still counted, not dropped.
    """
    end, onset = scenario.speech_end, scenario.interrupt_onset
    edge = next((t for t in record["vad_ends"] if t > end), None)
    after = next((t for t in record["vad_ends"] if edge is not None and t > max(edge, onset)), math.inf)
    first = next((a for a, _ in record["agent"] if end < a < after), None)
    stop = max((b for a, b in record["agent"] if first is not None and first <= a < after), default=None)
    barged = first is not None and first < onset and stop is not None

    def ms(value: float | None) -> float | None:
        return None if value is None else round(1000 * value, 2)

    return {
        "overhead": ms(None if first is None else first - end - STOP_WINDOW - FIXED_DELAYS),
        "post_vad": ms(None if first is None or edge is None else first - edge - FIXED_DELAYS),
        "vad_offset": ms(None if edge is None else edge - end - STOP_WINDOW),
        "barge_in": ms(max(0.0, stop - onset) if barged and stop is not None else None),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between ranks (as numpy and spreadsheets do); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


METRICS = ("overhead", "post_vad", "vad_offset", "barge_in")


def run_figures(result: dict[str, Any], scenario: Scenario) -> dict[str, float]:
    """One run of one framework at one call count: p50/p95 of each per-call figure over its
    calls, how many calls reached each, and the process's CPU and memory per call."""
    calls = result["calls"]
    per_call = [call_figures(record, scenario) for record in result["records"]]
    row: dict[str, float] = {"calls": calls}
    for name in METRICS:
        values = [v for figures in per_call if (v := figures[name]) is not None]
        row[f"{name}_p50"] = percentile(values, 0.5)
        row[f"{name}_p95"] = percentile(values, 0.95)
        row[f"{name}_n"] = len(values)
    row["cpu_ms_per_call_s"] = 1000 * result["cpu_s"] / (calls * result["wall_s"])
    row["rss_mb_per_call"] = (result["rss_peak_mb"] - result["rss_base_mb"]) / calls
    row["caller_late_max_ms"] = 1000 * max((r["caller_late"] for r in result["records"]), default=math.nan)
    return row


def medians(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Per figure, the median over repeated runs (NaNs, runs where no call got that far, are
    left out, so one bad run does not erase the others)."""
    rows = list(rows)
    keys = [k for k in rows[0]] if rows else []
    out = {}
    for key in keys:
        values = [row[key] for row in rows if not math.isnan(row[key])]
        out[key] = statistics.median(values) if values else math.nan
    return out


COLUMNS = (
    ("overhead_p50", "ovh p50"), ("overhead_p95", "ovh p95"),
    ("post_vad_p50", "postVAD p50"), ("post_vad_p95", "postVAD p95"),
    ("vad_offset_p50", "VADoff p50"), ("vad_offset_p95", "VADoff p95"),
    ("barge_in_p50", "barge p50"), ("barge_in_p95", "barge p95"),
    ("cpu_ms_per_call_s", "CPUms/call-s"), ("rss_mb_per_call", "RSS MB/call"),
)
"""(figure, title): ovh = overhead, VADoff = VAD offset, barge = barge-in stop (all ms)."""


def ratio(ours: float, theirs: float) -> float:
    """voiceflow / Pipecat. Latency figures can be near zero or negative (a VAD that decides
    before its nominal window), where a ratio says nothing: those are NaN."""
    if math.isnan(ours) or math.isnan(theirs) or theirs <= 0 or ours < 0:
        return math.nan
    return ours / theirs


def table(rows: dict[int, dict[str, dict[str, float]]]) -> str:
    """The printed comparison: per call count, voiceflow, Pipecat and voiceflow/Pipecat."""
    name_width = 12
    lines = ["calls  framework   " + " ".join(f"{title:>{name_width}}" for _, title in COLUMNS)
             + "  measured  late ms"]

    def cell(value: float) -> str:
        return f"{'-':>{name_width}}" if math.isnan(value) else f"{value:>{name_width}.2f}"

    for calls in sorted(rows):
        sides = rows[calls]
        for name in ("voiceflow", "pipecat"):
            if name not in sides:
                continue
            row = sides[name]
            lines.append(f"{calls:>5}  {name:<10}  " + " ".join(cell(row[key]) for key, _ in COLUMNS)
                         + f"  {row['overhead_n']:>4.0f}/{row['barge_in_n']:<4.0f}"
                         + f"  {row['caller_late_max_ms']:>7.1f}")
        if {"voiceflow", "pipecat"} <= sides.keys():
            ours, theirs = sides["voiceflow"], sides["pipecat"]
            lines.append(f"{calls:>5}  {'vf/pipecat':<10}  "
                         + " ".join(cell(ratio(ours[key], theirs[key])) for key, _ in COLUMNS))
    return "\n".join(lines)
