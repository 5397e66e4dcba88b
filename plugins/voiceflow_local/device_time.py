"""From PortAudio's audio threads to the event loop: when a sample is heard or was captured,
and how to hand work over without ever blocking the sound card.

PortAudio calls back on its own thread, on time or the sound breaks up, so a callback only
copies samples and schedules the rest on the event loop (``call_soon_threadsafe``: no lock held
across threads, no waiting). Times cross over as ``time.monotonic()`` readings, which is the
asyncio loop's clock too; the session's clock is applied on the loop side.

PortAudio's callback says when the block's first input sample reached the converter
(``inputBufferAdcTime``) and when its first output sample will leave it
(``outputBufferDacTime``), on the stream's own clock: the sound card's and the sound server's
buffering, the part of the latency no one sees from Python. The stream's clock is read again,
beside ``time.monotonic()``, when the Python callback finally runs: it may have waited for the
interpreter (a busy event loop holds it), and pairing the reported times with a reading taken
before that wait would move every stamp by the wait. Host APIs that report no times leave them
at zero; the stream's nominal latency stands in for them then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

MAX_DEVICE_DELAY = 2.0
"""Seconds beyond which a reported device delay is taken for a host API's bad arithmetic."""


def nominal_latency(reported: float) -> float:
    """A stream's reported latency, or 0 when it cannot be one (PortAudio 19.6's JACK host API
    underflows an unsigned subtraction and reports a day)."""
    return reported if 0.0 <= reported <= MAX_DEVICE_DELAY else 0.0


class StreamClock:
    """Moves times on a PortAudio stream's clock onto ``time.monotonic()``."""

    def __init__(self) -> None:
        self.read: Callable[[], float] = lambda: 0.0
        """The stream's clock now (``Stream.time``); 0 until a stream is attached."""

    def monotonic(self, moment: float, otherwise: float) -> float:
        """``time.monotonic()`` at stream time ``moment``; now + ``otherwise`` seconds when the
        host API reported no time (or an impossible one)."""
        now, stream_now = time.monotonic(), self.read()
        delta = moment - stream_now
        if moment == 0.0 or stream_now == 0.0 or abs(delta) > MAX_DEVICE_DELAY:
            return now + otherwise
        return now + delta


class ToLoop:
    """Runs functions on the event loop that created it, when asked from any thread.

    Created on the loop (before the streams start); called from PortAudio's threads. Once the
    loop has closed the call is over and nothing waits for the work: it is dropped.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    def __call__(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:
            pass  # the loop is closed
