"""smart-turn v3.2 on this machine: what it costs, and how often it is right on real recordings.

    python benchmarks/end_of_turn.py [--runs 40] [--threshold 0.5]

Costs: loading (hashing the file, creating the onnxruntime session), the numpy features of one
8 s window, the network alone on 1 and 2 intra-op threads (p50/p90), and a whole ``turn_complete``
as the runtime calls it (thread hand-off included). The machine's load average is printed beside
them: on a shared 2-core box the figures move with it.

Verdicts: pause candidates cut from Debian's pocketsphinx-testdata recordings (real read and
spoken English, 16 kHz), each handed to the detector the way the runtime does, as the caller's
audio up to where the pause began:

* ``end``: a recording up to the end of its speech, where the speaker had finished;
* ``clause``: four LibriVox clips that end at a comma, colon or semicolon of the novel, read as a
  sentence that goes on: printed, not scored;
* ``pause``: the caller's own pauses inside an utterance, as Silero VAD finds them with a 0.1 s
  stop window (these recordings hold few: read speech flows), and the comma pauses of a spoken
  list ("eight of spades, four of clubs, ...");
* ``stopped``: a sentence stopped after a function word ("...had then leisure to"), where the
  caller cannot be finished. The word ends are Whisper base's word timestamps (±50 ms or so);
  Whisper transcribing each cut gives back the listed words (it garbles the first words of
  "had he married a ...", whose timing is least certain).

Accuracy at ``--threshold``: an ``end`` is right at or above it, a ``pause`` or ``stopped``
below it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_fixtures import pocketsphinx_pcm, speech_bounds  # noqa: E402 - the tests' recordings
from voiceflow.frames import SAMPLE_RATE
from voiceflow.models import sha256_of
from voiceflow_smart_turn import SmartTurnConfig, SmartTurnDetector
from voiceflow_smart_turn.features import features
from voiceflow_smart_turn.model import INPUT, new_session
from voiceflow_smart_turn.weights import installed

LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-{}.wav"
ENDS = [LIBRIVOX.format("0870")] + [f"cards/00{i}.wav" for i in range(1, 6)] + [
    "goforward.raw", "something.raw", "numbers.raw", "tidigits/dhd.2934z.raw"
]
"""Recordings that end where the speaker finished: a sentence, a command, a card, a number."""
CLAUSES = [LIBRIVOX.format(n) for n in ("0880", "0890", "0920", "0930")]
"""LibriVox clips that end at a comma, colon or semicolon of the novel, read with the voice of a
sentence that goes on (it does, in the next clip): shown, but not scored, as either answer can
be argued."""
RECORDINGS = ENDS + CLAUSES

# (recording, word end in seconds, the words so far): the list's comma pauses, then sentences
# stopped after a word that cannot end them.
LIST_PAUSES = [("cards/005.wav", 1.06, "eight of spades,"), ("cards/005.wav", 1.90, "eight of spades, four of clubs,")]
STOPPED = [
    (LIBRIVOX.format("0870"), 1.76, "and mister john dashwood had"),
    (LIBRIVOX.format("0870"), 2.02, "...dashwood had then"),
    (LIBRIVOX.format("0870"), 2.86, "...had then leisure to"),
    (LIBRIVOX.format("0870"), 3.74, "...to consider how"),
    (LIBRIVOX.format("0870"), 4.22, "...to consider how much"),
    (LIBRIVOX.format("0870"), 4.92, "...how much there might be"),
    (LIBRIVOX.format("0870"), 5.58, "...might be prudently in"),
    (LIBRIVOX.format("0870"), 5.74, "...prudently in his"),
    (LIBRIVOX.format("0870"), 6.16, "...in his power to"),
    (LIBRIVOX.format("0870"), 6.58, "...in his power to do for"),
    (LIBRIVOX.format("0880"), 0.52, "he was"),
    (LIBRIVOX.format("0880"), 1.30, "he was not an"),
    (LIBRIVOX.format("0890"), 0.84, "unless to be"),
    (LIBRIVOX.format("0890"), 2.36, "...rather cold hearted and"),
    (LIBRIVOX.format("0890"), 2.70, "...cold hearted and rather"),
    (LIBRIVOX.format("0890"), 3.98, "...and rather selfish is to"),
    (LIBRIVOX.format("0890"), 4.14, "...selfish is to be"),
    (LIBRIVOX.format("0920"), 1.06, "had he married a"),
    (LIBRIVOX.format("0920"), 1.32, "had he married a more"),
    (LIBRIVOX.format("0920"), 2.68, "...amiable woman he"),
    (LIBRIVOX.format("0920"), 2.92, "...woman he might"),
    (LIBRIVOX.format("0920"), 3.32, "...he might have been"),
    (LIBRIVOX.format("0920"), 4.00, "...have been made still"),
    (LIBRIVOX.format("0920"), 4.22, "...made still more"),
    (LIBRIVOX.format("0920"), 5.14, "...still more respectable than"),
    (LIBRIVOX.format("0930"), 0.58, "he might"),
    (LIBRIVOX.format("0930"), 1.10, "he might even have"),
    (LIBRIVOX.format("0930"), 1.26, "he might even have been"),
    (LIBRIVOX.format("0930"), 1.60, "he might even have been made"),
    ("cards/002.wav", 1.16, "four queen of"),
    ("cards/005.wav", 1.64, "eight of spades, four of"),
    ("cards/005.wav", 2.74, "eight of spades, four of clubs, seven of"),
    ("something.raw", 1.32, "go somewhere and"),
]


def upto(pcm: bytes, seconds: float) -> bytes:
    return pcm[: 2 * round(seconds * SAMPLE_RATE)]


@dataclass
class Candidate:
    kind: str  # "end", "clause", "pause" or "stopped"
    name: str
    seconds: float
    words: str
    audio: bytes


async def vad_pauses() -> list[Candidate]:
    """The callers' own mid-utterance pauses, found as the runtime would: Silero's speech ends,
    all but each recording's last."""
    from voiceflow.audio import split_frames
    from voiceflow.frames import FRAME_SECONDS, AudioFrame
    from voiceflow_silero import SileroConfig, SileroVAD

    vad = SileroVAD(SileroConfig(stop_secs=0.1))
    await vad.prepare()
    found = []
    for name in RECORDINGS:
        pcm = pocketsphinx_pcm(name)
        stream = vad.create_stream()
        ends = [
            event.t
            for i, chunk in enumerate(split_frames(pcm + b"\0\0" * SAMPLE_RATE))
            if (event := stream.process(AudioFrame(chunk, i * FRAME_SECONDS))) is not None
            and event.kind.value == "speech_end"
        ]
        found += [Candidate("pause", name, t, "(VAD pause)", upto(pcm, t)) for t in ends[:-1]]
    await vad.aclose()
    return found


async def candidates() -> list[Candidate]:
    ends = []
    for name in RECORDINGS:
        pcm = pocketsphinx_pcm(name)
        kind, words = ("end", "(whole utterance)") if name in ENDS else ("clause", "(the novel's sentence goes on)")
        ends.append(Candidate(kind, name, end := speech_bounds(pcm)[1], words, upto(pcm, end)))
    cuts = []
    for kind, table in (("pause", LIST_PAUSES), ("stopped", STOPPED)):
        for name, seconds, words in table:
            pcm = pocketsphinx_pcm(name)
            cuts.append(Candidate(kind, name, seconds, words, upto(pcm, seconds)))
    return ends + await vad_pauses() + cuts


def percentiles(samples: list[float]) -> str:
    ms = sorted(1000 * s for s in samples)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms"


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


COLD_PREPARE = """
import time
started = time.perf_counter()
import anyio
from voiceflow_smart_turn import SmartTurnConfig, SmartTurnDetector
anyio.run(SmartTurnDetector(SmartTurnConfig()).prepare)
print(time.perf_counter() - started)
"""


def cold_prepare() -> float:
    """prepare() in a fresh interpreter: importing onnxruntime, hashing the file, the session."""
    out = subprocess.run([sys.executable, "-c", COLD_PREPARE], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


async def costs(path: Path, runs: int) -> None:
    print(f"model {path}\n{load_line()}")
    print(f"  prepare(), new process  {percentiles([cold_prepare() for _ in range(5)])}  (imports included)")
    print(f"  sha256 of the file      {percentiles(timed(lambda: sha256_of(path), 5))}")
    print(f"  session creation        {percentiles(timed(lambda: new_session(path, 1), 5))}")
    clip = pocketsphinx_pcm(LIBRIVOX.format("0870"))
    print(f"  features (8 s window)   {percentiles(timed(lambda: features(clip), runs))}")
    inputs = {INPUT: features(clip)}
    for threads in (1, 2):
        session = new_session(path, threads)

        def infer(session: Any = session) -> None:
            session.run(None, inputs)

        infer()  # warm
        print(f"  inference, {threads} thread{'s' if threads > 1 else ' '}    {percentiles(timed(infer, runs))}")
    detector = SmartTurnDetector(SmartTurnConfig())
    await detector.prepare()
    await detector.turn_complete(clip, "")
    whole = []
    for _ in range(runs):
        started = time.perf_counter()
        await detector.turn_complete(clip, "")
        whole.append(time.perf_counter() - started)
    print(f"  turn_complete, 1 thread {percentiles(whole)}  (features + inference + thread hand-off)")
    print(load_line())


async def verdicts(threshold: float) -> None:
    detector = SmartTurnDetector(SmartTurnConfig())
    await detector.prepare()
    rows = []
    for c in await candidates():
        p = await detector.turn_complete(c.audio, "")
        right = (p >= threshold) == (c.kind == "end")
        rows.append((c, p, right))
    print(f"\nverdicts at threshold {threshold} (audio up to where the pause begins)")
    for c, p, right in rows:
        label = c.name.replace("librivox/sense_and_sensibility_01_austen_64kb-", "librivox ")
        mark = "   " if c.kind == "clause" else "ok " if right else "BAD"
        print(f"  {mark} {c.kind:<7} {p:5.2f}  {label:<22} {c.seconds:5.2f} s  {c.words}")
    print()
    for label, kinds in (("end", {"end"}), ("pause", {"pause"}), ("stopped", {"stopped"}),
                         ("all scored", {"end", "pause", "stopped"})):
        mine = [right for c, _, right in rows if c.kind in kinds]
        print(f"  {label:<10} {sum(mine):>3}/{len(mine):<3} right ({100 * sum(mine) / len(mine):.0f} %)")
    clauses = ", ".join(f"{p:.2f}" for c, p, _ in rows if c.kind == "clause")
    print(f"  clause ends (not scored): {clauses}")


async def main(runs: int, threshold: float) -> None:
    await costs(installed(), runs)
    await verdicts(threshold)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per figure")
    parser.add_argument("--threshold", type=float, default=0.5, help="'complete' at or above this")
    args = parser.parse_args()
    anyio.run(main, args.runs, args.threshold)
