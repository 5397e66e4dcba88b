"""The batch model: Silero's graph in an ONNX Scan scores many calls' windows in one run, with
exactly the results of one run per window; a failed batch run falls back to one run per window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from voiceflow.models import ensure_model_file
from voiceflow_silero import SILERO_V6
from voiceflow_silero.batch_model import INPUTS, OUTPUTS, batch_model
from voiceflow_silero.scoring import Window, score, score_windows

onnxruntime = pytest.importorskip("onnxruntime")


def session(model: bytes) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def sessions() -> tuple[Any, Any]:
    model = ensure_model_file(SILERO_V6).read_bytes()
    return session(model), session(batch_model(model))


def windows(n: int, seed: int = 0) -> list[Window]:
    """Windows of different calls: each its own audio and its own recurrent state."""
    rng = np.random.default_rng(seed)
    return [Window({"input": (rng.standard_normal((1, 576)) * 0.1).astype(np.float32),
                    "h": (rng.standard_normal((1, 1, 128)) * 0.1).astype(np.float32),
                    "c": (rng.standard_normal((1, 1, 128)) * 0.1).astype(np.float32)}) for _ in range(n)]


def test_the_batch_model_takes_and_gives_the_documented_tensors(sessions: tuple[Any, Any]) -> None:
    _, batch = sessions
    assert tuple(i.name for i in batch.get_inputs()) == INPUTS
    assert tuple(o.name for o in batch.get_outputs()) == OUTPUTS


@pytest.mark.parametrize("n", [2, 7, 200])
def test_one_batch_run_equals_one_run_per_window(sessions: tuple[Any, Any], n: int) -> None:
    plain, batch = sessions
    together, alone = windows(n), windows(n)
    score_windows(plain, batch, together)
    for window in alone:
        window.prob = score(plain, window.feeds)
    for a, b in zip(together, alone, strict=True):
        assert a.error is None and a.prob == b.prob
        assert np.array_equal(a.feeds["h"], b.feeds["h"]) and np.array_equal(a.feeds["c"], b.feeds["c"])


def test_a_window_that_breaks_the_batch_fails_alone(sessions: tuple[Any, Any]) -> None:
    plain, batch = sessions
    batch_of_three = windows(3)
    batch_of_three[1].feeds["input"] = np.zeros((1, 100), dtype=np.float32)  # not a window
    score_windows(plain, batch, batch_of_three)
    assert [w.error is None for w in batch_of_three] == [True, False, True]
    expected = windows(3)
    assert batch_of_three[2].prob == score(plain, expected[2].feeds)


def test_what_is_not_an_onnx_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not an ONNX model"):
        batch_model(b"\x0f\x00")
