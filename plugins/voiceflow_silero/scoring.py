"""The model call: one Silero window scored, its LSTM state carried, inline or in a batch.

The shipped v6 export takes its recurrent state with a fixed batch of one (``h``/``c`` are
``[1, 1, 128]``), so windows of different calls cannot share one forward pass. A batch is scored
in one run of the :mod:`~voiceflow_silero.batch_model` (the graph looped over the windows inside
onnxruntime, each with its own call's state), which releases the GIL once for the whole batch;
window by window through the plain model if that model is missing or the batch run fails.
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


def score_windows(session: Any, batch_session: Any | None, windows: Sequence[Window]) -> None:
    """A worker thread's batch: all windows in one run of ``batch_session`` if there is one;
    else, or if that run fails (one window may be at fault), each alone through ``session``."""
    if batch_session is not None and len(windows) > 1:
        try:
            _score_together(batch_session, windows)
            return
        except Exception:  # noqa: BLE001, S110 - scored one by one below, each failure its own
            pass
    for window in windows:
        try:
            window.prob = score(session, window.feeds)
        except Exception as exc:  # noqa: BLE001 - that call's stream raises it
            window.error = exc


def _score_together(batch_session: Any, windows: Sequence[Window]) -> None:
    probs, hs, cs = batch_session.run(None, {
        "windows": np.stack([window.feeds["input"] for window in windows]),
        "hs": np.stack([window.feeds["h"] for window in windows]),
        "cs": np.stack([window.feeds["c"] for window in windows]),
    })
    for i, window in enumerate(windows):
        window.prob = float(probs[i, 0])
        window.feeds["h"], window.feeds["c"] = hs[i], cs[i]
