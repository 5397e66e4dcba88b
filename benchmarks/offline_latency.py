"""Mouth-to-ear latency of the shipped offline agent over the shipped caller recordings.

    python benchmarks/offline_latency.py [--repeat 3] [--agent agents/local.yaml]

Runs every recording in agents/recordings/ through the agent (models loaded once, virtual clock,
compute counted in full) and prints, per agent reply to the caller, the end-of-speech →
first-audio time as the listener hears it and where it went, then the p50/p90 over all replies.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import anyio

from voiceflow.config.loader import load_agent
from voiceflow.logging import configure_logging
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import ProviderKind
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import serve_agent

ROOT = Path(__file__).resolve().parent.parent
SPANS = ("mouth_to_ear", "endpointing", "stt_ttfb", "llm_ttfb", "tts_ttfb", "endpoint_to_first_audio")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(agent_path: Path, repeat: int, recordings: list[Path]) -> None:
    registry = PluginRegistry()
    agent = load_agent(agent_path, registry)
    file_transport = registry.get(ProviderKind.TRANSPORT, "file").cls.config_model
    pool = ProviderPool(registry)
    rows: list[dict[str, Any]] = []
    for round_ in range(repeat):
        for recording in recordings:
            config = file_transport.model_validate({"provider": "file", "input": recording})
            results = await serve_agent(agent.model_copy(update={"transport": config}), registry, pool=pool)
            for turn in results[0].timeline.turns:
                if turn.kind == "reply" and turn.mouth_to_ear is not None:
                    spans = {name: turn.span(name) for name in SPANS}
                    rows.append({"recording": recording.name, "round": round_, **spans})
                    print(f"{recording.name:<18} round {round_}  " + "  ".join(
                        f"{name} {1000 * value:5.0f}" for name, value in spans.items() if value is not None))
    print()
    for name in SPANS:
        values = [row[name] for row in rows if row[name] is not None]
        if values:
            print(f"{name:<24} p50 {1000 * statistics.median(values):5.0f} ms   "
                  f"p90 {1000 * percentile(values, 0.9):5.0f} ms   n={len(values)}")
    await pool.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", type=Path, default=ROOT / "agents/local.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("recordings", nargs="*", type=Path)
    args = parser.parse_args()
    configure_logging("console", "warning")
    recordings = args.recordings or sorted((ROOT / "agents/recordings").glob("*.wav"))
    anyio.run(main, args.agent, args.repeat, recordings)
