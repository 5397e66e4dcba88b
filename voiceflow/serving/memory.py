"""A serving process's memory housekeeping: the garbage collector and the malloc heap.

**The collector.** CPython's cyclic collector runs a young-generation pass every 700 net
allocations and, every 100 of those, a full pass over every tracked object. A process that holds
models, imported modules and 200 calls' state has a million of them, and a call allocates tens of
thousands of short-lived objects a second (frames, tasks, handles). Measured with 200 calls of
the side-by-side benchmark on 2 cores: 5 s of collection in a 20 s run, single pauses of 140 ms,
during which every call's audio waits. :func:`settle_after_start` moves everything that exists
once the models are loaded out of the collector's sight (``gc.freeze``: it is never garbage) and
raises the young-generation threshold to :data:`YOUNG_THRESHOLD`, so passes are rarer and each
looks only at the calls' own objects: 0.15 s of collection in the same run, the longest pause
26 ms. Reference counting still frees almost everything at once; only cycles wait longer.

**The heap.** glibc's ``malloc`` keeps freed memory in its arenas for reuse and returns it to the
system only from the top of the heap, so a burst of calls leaves the process big after they
end. :class:`HeapTrimmer` calls ``malloc_trim`` every ``every`` seconds, in a worker thread (it
walks the arenas and takes their locks, which would stall the event loop on a big heap); it does
nothing where the C library has no ``malloc_trim`` (musl, macOS). Measured: after 100 WebSocket
callers hung up, trimming took a serve process from 209 to 162 MB. (It is not what kept memory
growing with every call served: that was ended calls' audio buffers held by their reference
cycles, which the calls now release themselves; see :meth:`voiceflow.runtime.audio_tail.AudioTail.clear`.)

**Full passes on a clock.** With the thresholds above, a busy server makes a full collection
almost never: measured under 200 WebSocket callers, a young pass came every ~15 s, so a middle
pass every ~5 minutes and a full one every ~4 hours. Cycles that outlive a young pass wait for
that full pass, and a call's connection leaves one however its own objects are freed: the
``websockets`` library's sans-I/O ``ServerProtocol`` and its parser generator refer to each other
after the socket closes (~3 KB a call; 500 calls a minute at 200 callers made the process grow
1-2 MB a minute, and a four-hour pile of garbage would make the eventual pass pause for seconds).
:class:`FullCollector` runs a full pass every ``every`` seconds instead, on the event loop (a
collection holds the GIL, so a thread would not spare the loop): the garbage never exceeds two
minutes' worth (by default), and the pause stays what the live calls cost to walk: measured
70-195 ms with ~190 calls on 2 cores, every two minutes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import structlog

log = structlog.get_logger("voiceflow.serve")

YOUNG_THRESHOLD = 20_000
"""Net allocations between young-generation passes (CPython's default is 700)."""
OLDER_THRESHOLDS = (20, 50)
"""Young passes per middle pass, middle passes per full pass (defaults 10 and 10)."""


def settle_after_start() -> None:
    """Freeze what the process holds now (models, modules, configuration) and make collection
    rarer. Call once, when the agents are prepared and before calls arrive."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    log.info("collector settled", frozen=gc.get_freeze_count(), thresholds=list(gc.get_threshold()))


def malloc_trim() -> Callable[[], int] | None:
    """The C library's ``malloc_trim(0)``, or None where there is none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


class HeapTrimmer:
    """Gives the malloc heap's free memory back to the system every ``every`` seconds."""

    def __init__(self, every: float, trim: Callable[[], int] | None = None) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self.every = every
        self._trim = trim if trim is not None else malloc_trim()
        self.trims = 0
        """How many times the heap was trimmed (for tests and logs)."""

    @property
    def available(self) -> bool:
        return self._trim is not None

    async def run(self) -> None:
        """Until cancelled."""
        if self._trim is None:
            log.info("no malloc_trim in this C library: the heap is not trimmed")
            return
        while True:
            await anyio.sleep(self.every)
            await self.trim_once()

    async def trim_once(self) -> None:
        if self._trim is not None:
            await anyio.to_thread.run_sync(self._trim)
            self.trims += 1
            log.debug("heap trimmed", trims=self.trims)


class FullCollector:
    """Runs the cyclic collector's full pass every ``every`` seconds (see the module's docstring)."""

    def __init__(self, every: float, collect: Callable[[], int] = gc.collect,
                 on_pause: Callable[[float], None] | None = None) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self.every = every
        self._collect = collect
        self._on_pause = on_pause
        """Told each pass's pause (the server's loop-lag probe: a planned pause is not overload)."""
        self.passes = 0
        """How many full passes ran (for tests and logs)."""

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            await anyio.sleep(self.every)
            self.collect_once()

    def collect_once(self) -> float:
        """One full pass, now; how long it held the event loop, in seconds."""
        started = time.perf_counter()
        self._collect()
        pause = time.perf_counter() - started
        self.passes += 1
        log.debug("full collection", pause_ms=round(1000 * pause, 1), passes=self.passes)
        if self._on_pause is not None:
            self._on_pause(pause)
        return pause
