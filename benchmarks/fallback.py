"""How long a caller waits when the primary voice or model fails, and how true the heard text is.

    python benchmarks/fallback.py [--repeat 5]

1. **Failover gap.** Whole calls (file transport, virtual clock, scripted providers from
   voiceflow.testing) whose primary TTS or LLM fails, with a working second entry: for a primary
   that hangs (its ``first_byte`` deadline, 1.0 s here, decides) and one that dies mid-stream.
   The figure is what the caller hears: the longest silence inside the reply on the agent's
   channel of the recording (for a hang, the wait from the end of the caller's speech to the
   first audio instead), minus the same call with a healthy primary.
2. **Heard text at barge-in.** For voices that pause (a lead-in silence, and pauses at
   punctuation), the words credited as heard when the caller cuts in at random points, from the
   voice's alignment marks versus the proportional estimate, against the truth; reported as the
   share of cut points where the heard text is exactly right.

The numbers are medians over ``--repeat`` runs; they measure voiceflow's own failover, not any
provider's network.
"""

from __future__ import annotations

import argparse
import random
import statistics
from typing import Any

import anyio
import numpy as np
import yaml

from voiceflow.clock import open_clock
from voiceflow.config.loader import parse_agent
from voiceflow.frames import SAMPLE_RATE
from voiceflow.logging import configure_logging
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.reply import Clause
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import Session
from voiceflow.testing import fakes, faults
from voiceflow.testing.fakes import silence, speech_like
from voiceflow_file import FileCall, FileTransportConfig

REPLY = "Well, there are many things to say about that. First, the weather is mild today."
TIMEOUTS = {"connect": 1.0, "first_byte": 1.0, "idle": 1.0}


def agent(registry: PluginRegistry, stage: str | None, fault: str) -> Any:
    healthy: dict[str, dict[str, Any]] = {"llm": {"provider": "scripted-llm", "replies": [REPLY]}, "tts": {"provider": "tone"}}
    data: dict[str, Any] = {
        "name": "fallback", "prompt": {"system": "x"}, "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}], "stt": [{"provider": "scripted-stt", "lines": ["tell me"]}],
        "llm": [healthy["llm"]], "tts": [healthy["tts"]],
    }
    if stage is not None:
        data[stage] = [{**healthy[stage], "provider": f"faulty-{stage}", "fault": fault, "after": 6,
                        "timeouts": TIMEOUTS}, healthy[stage]]
    return parse_agent(yaml.safe_dump(data), "fallback.yaml", registry)


async def one_call(stage: str | None, fault: str) -> tuple[float, float]:
    """(longest silence inside the reply, end of speech → first reply audio), in seconds."""
    registry = PluginRegistry(plugins=[fakes, faults])
    cfg = agent(registry, stage, fault)
    pool = ProviderPool(registry)
    await prepare(cfg, pool)
    call = FileCall(FileTransportConfig(start="immediately", lead_in=0), silence(0.3) + speech_like(1.0) + silence(12.0))
    async with open_clock("virtual") as clock:
        result = await Session(cfg, pool, call, clock).run()
    call.close()
    reply = next(t for t in result.timeline.turns if t.kind == "reply")
    track = call._agent.samples[: call._agent.length] if call._agent else np.zeros(0, dtype="<i2")
    start = round((reply.marks["first_audio_out"] - reply.origin) * SAMPLE_RATE)
    end = round((reply.marks["reply_heard"] - reply.origin) * SAMPLE_RATE)
    quiet = np.abs(track[start:end]) == 0
    longest = run = 0
    for q in quiet:  # tone audio is never exactly zero, so zeros are the gaps a caller hears
        run = run + 1 if q else 0
        longest = max(longest, run)
    await pool.aclose()
    return longest / SAMPLE_RATE, reply.marks["first_audio_out"] - reply.marks["user_speech_end"]


def heard_text_accuracy(rng: random.Random, cuts: int = 2000) -> tuple[float, float]:
    """Share of cut points where the heard text is exactly right: (alignment, proportional)."""
    right_aligned = right_proportional = 0
    for _ in range(cuts):
        words = REPLY.split()
        text = " ".join(words)
        # A voice: lead-in silence, ~70 ms a character, pauses after punctuation.
        t = rng.uniform(0.1, 0.6)
        ends: list[tuple[int, float]] = []
        position = 0
        for word in words:
            t += len(word) * rng.uniform(0.05, 0.09)
            position += len(word)
            ends.append((position, t))
            t += 0.35 if word[-1] in ",." else 0.04
            position += 1
        total = t
        cut = rng.uniform(0.0, total)
        truth = " ".join(w for w, (_, end) in zip(words, ends, strict=True) if end <= cut)
        clause = Clause(text, queued=round(total * SAMPLE_RATE), heard=round(cut * SAMPLE_RATE))
        clause.alignment = [(round(end * SAMPLE_RATE), chars) for chars, end in ends]
        right_aligned += clause.heard_share() == truth
        clause.alignment = None
        right_proportional += clause.heard_share() == truth
    return right_aligned / cuts, right_proportional / cuts


async def main(repeat: int) -> None:
    cases = [("healthy", None, "none"), ("TTS hangs", "tts", "hang_first_byte"),
             ("TTS dies mid-reply", "tts", "die_mid_stream"), ("LLM hangs", "llm", "hang_first_byte"),
             ("LLM dies mid-reply", "llm", "die_mid_stream")]
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in cases}
    for _ in range(repeat):
        for name, stage, fault in cases:
            gap, wait = await one_call(stage, fault)
            results[name][0].append(gap)
            results[name][1].append(wait)
    base_gap = statistics.median(results["healthy"][0])
    base_wait = statistics.median(results["healthy"][1])
    print(f"{'case':<20} {'longest gap in reply':>22} {'speech end → audio':>20}   (median of {repeat})")
    for name, _, _ in cases:
        gap, wait = statistics.median(results[name][0]), statistics.median(results[name][1])
        print(f"{name:<20} {1000 * gap:>11.0f} ms (+{1000 * (gap - base_gap):4.0f}) "
              f"{1000 * wait:>9.0f} ms (+{1000 * (wait - base_wait):4.0f})")
    aligned, proportional = heard_text_accuracy(random.Random(7))
    print(f"\nheard text exactly right at a random barge-in: alignment {100 * aligned:.1f} %, "
          f"proportional estimate {100 * proportional:.1f} %")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging("console", "error")
    anyio.run(main, args.repeat)
