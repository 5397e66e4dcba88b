"""The model call: one Silero window scored, its LSTM state carried, inline or in a batch.

The shipped v6 export takes its recurrent state with a fixed batch of one (``h``/``c`` are
``[1, 1, 128]``), so windows of different calls cannot share one ``run``: a batch is scored
window by window, in one worker thread, each with its own call's state. onnxruntime releases the
GIL inside ``run``, so the event loop keeps running meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Window:
    """One call's completed window: its feeds (``input`` (1, 576), ``h``, ``c``) in, the speech
    probability and the next state (written back into ``feeds``) out, or the error."""

    __slots__ = ("error", "feeds", "prob")

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self.feeds = feeds
        self.prob = 0.0
        self.error: Exception | None = None


def score(session: Any, feeds: dict[str, np.ndarray]) -> float:
    """Run the model on ``feeds`` and carry its state forward in place; the speech probability."""
    probs, feeds["h"], feeds["c"] = session.run(None, feeds)
    return float(probs.item(0))


def score_all(session: Any, windows: Sequence[Window]) -> None:
    """Score each window in order (a worker thread's batch); one failure stays with its window."""
    for window in windows:
        try:
            window.prob = score(session, window.feeds)
        except Exception as exc:  # noqa: BLE001 - that call's stream raises it
            window.error = exc
