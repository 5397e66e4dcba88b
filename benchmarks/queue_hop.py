"""What one hand-over between two tasks costs the event loop, per item: a bare timer wake, an anyio
memory object stream, and voiceflow's FrameQueue (docs/latency.md, "Many calls").

    .venv/bin/python benchmarks/queue_hop.py            # 200 producers, 250 items each, 3 runs
    .venv/bin/python benchmarks/queue_hop.py --tasks 100 --runs 5

Each producer wakes on a 20 ms timer (like a call's caller frames) and, except in ``timer``
mode, hands the item to its own consumer task. The figure is the process's CPU time per item,
median over the runs; the hand-over's own cost is the difference to ``timer``. Runs on the loop
``voiceflow serve`` uses (uvloop where installed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio

from voiceflow.clock import RealClock
from voiceflow.frame_queue import FrameQueue
from voiceflow.serving.command import loop_options

FRAME = 0.02


async def _produce(clock: RealClock, start: float, items: int, hand: Callable[[int], Awaitable[None]] | None) -> None:
    for k in range(items):
        await clock.sleep_until(start + k * FRAME)
        if hand is not None:
            await hand(k)


async def _one_run(mode: str, tasks: int, items: int) -> float:
    clock = RealClock()
    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            start = clock.now() + FRAME * i / tasks
            if mode == "timer":
                tg.start_soon(_produce, clock, start, items, None)
            elif mode == "memory-stream":
                send, receive = anyio.create_memory_object_stream[int](10)

                async def drain_stream(receive: anyio.abc.ObjectReceiveStream[int] = receive) -> None:
                    async for _ in receive:
                        pass

                async def produce_stream(send: anyio.abc.ObjectSendStream[int] = send, start: float = start) -> None:
                    async with send:
                        await _produce(clock, start, items, send.send)

                tg.start_soon(drain_stream)
                tg.start_soon(produce_stream)
            else:
                queue = FrameQueue[int](10)

                async def drain_queue(queue: FrameQueue[int] = queue) -> None:
                    async for _ in queue:
                        pass

                async def produce_queue(queue: FrameQueue[int] = queue, start: float = start) -> None:
                    await _produce(clock, start, items, queue.send)
                    queue.close()

                tg.start_soon(drain_queue)
                tg.start_soon(produce_queue)
    return (time.process_time() - cpu) / (tasks * items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"timer": [], "memory-stream": [], "frame-queue": []}
    for _ in range(args.runs):  # interleaved, so a machine that gets busier moves all three
        for mode, runs in figures.items():
            runs.append(anyio.run(_one_run, mode, args.tasks, args.items, backend_options=loop_options()))
    timer = statistics.median(figures["timer"]) * 1e6
    print(f"{args.tasks} producers x {args.items} items, median of {args.runs} runs, CPU µs per item:")
    for mode, runs in figures.items():
        cost = statistics.median(runs) * 1e6
        extra = "" if mode == "timer" else f"   (the hand-over: {cost - timer:.1f})"
        print(f"  {mode:14s} {cost:6.1f}{extra}")


if __name__ == "__main__":
    main()
