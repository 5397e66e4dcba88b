"""What one streamed item (an LLM token, a voice's audio chunk) costs on its way through a
fallback chain, its per-item deadline included (docs/reliability.md, "Deadlines").

    .venv/bin/python benchmarks/stream_item.py              # 50,000 items, 7 runs
    .venv/bin/python benchmarks/stream_item.py --items 20000 --runs 5

The provider yields its items without waiting, so the figure is the chain's own work: CPU
microseconds per item, median over the runs, on the loop ``voiceflow serve`` uses (uvloop where
installed). A bare ``async for`` over the same provider is printed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from voiceflow.clock import RealClock
from voiceflow.config.base import AttemptTimeouts
from voiceflow.runtime.chain import Chain
from voiceflow.serving.command import loop_options


@dataclass
class _Config:
    timeouts: AttemptTimeouts


class _Provider:
    """Stands in for any provider: the chain only reads its name and timeouts."""

    name = "instant"
    config = _Config(AttemptTimeouts())

    async def stream(self, items: int) -> AsyncIterator[bytes]:
        for _ in range(items):
            yield b"\0\0"


async def _per_item(items: int, runs: int, through_chain: bool) -> float:
    chain = Chain("tts", [_Provider()], RealClock())
    figures = []
    for _ in range(runs):
        cpu = time.process_time()
        if through_chain:
            async for _ in chain.stream(lambda provider: provider.stream(items), substantive=bool):
                pass
        else:
            async for _ in _Provider().stream(items):
                pass
        figures.append((time.process_time() - cpu) / items * 1e6)
    return statistics.median(figures)


async def _main(items: int, runs: int) -> None:
    bare = await _per_item(items, runs, through_chain=False)
    chained = await _per_item(items, runs, through_chain=True)
    print(f"{items} items, median of {runs} runs, CPU µs per item:")
    print(f"  bare async for   {bare:5.2f}")
    print(f"  through a chain  {chained:5.2f}   (the chain's own: {chained - bare:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    anyio.run(_main, args.items, args.runs, backend_options=loop_options())


if __name__ == "__main__":
    main()
