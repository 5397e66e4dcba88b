"""From PortAudio's audio threads to the event loop: when a sample is heard or was captured,
and how to hand work over without ever blocking the sound card.

PortAudio calls back on its own thread, on time or the sound breaks up, so a callback only
copies samples and schedules the rest on the event loop (``call_soon_threadsafe``: no lock held
across threads, no waiting). Times cross over as ``time.monotonic()`` readings, which is the
asyncio loop's clock too; the session's clock is applied on the loop side.

PortAudio's callback says when the block's first input sample reached the converter
(``inputBufferAdcTime``) and when its first output sample will leave it
(``outputBufferDacTime``), on the stream's own clock (``currentTime``). The difference to
``currentTime`` is what matters: it is the sound card's and the sound server's buffering, the
part of the latency no one sees from Python. Host APIs that do not report those times leave them
at zero; the stream's nominal latency stands in for them then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

MAX_DEVICE_DELAY = 2.0
"""Seconds beyond which a reported device delay is taken for a host API's bad arithmetic."""


def nominal_latency(reported: float) -> float:
    """A stream's reported latency, or 0 when it cannot be one (PortAudio 19.6's JACK host API
    underflows an unsigned subtraction and reports a day)."""
    return reported if 0.0 <= reported <= MAX_DEVICE_DELAY else 0.0


def delay_between(earlier: float, later: float, nominal: float) -> float:
    """Seconds from ``earlier`` to ``later`` (two PortAudio stream times), or ``nominal`` when the
    host API did not report one of them (zero) or reports something impossible."""
    if earlier == 0.0 or later == 0.0:
        return nominal
    delta = later - earlier
    return delta if 0.0 <= delta <= MAX_DEVICE_DELAY else nominal


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
