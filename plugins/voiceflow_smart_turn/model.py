"""The loaded smart-turn network: one onnxruntime session per (file, threads) in a process.

An :class:`onnxruntime.InferenceSession` may be run from several threads at once, so every call
of every session in the process shares one loaded model (8.7 MB of weights)
instead of loading it per call. Each scoring gets its own :class:`onnxruntime.RunOptions`: setting
its ``terminate`` flag from the event loop stops that inference within a millisecond, which is
how a cancelled ``turn_complete`` (the caller spoke again) frees the core at once instead of
finishing a verdict nobody will read.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from voiceflow.providers import ProviderUnavailable
from voiceflow_smart_turn.features import N_FRAMES, N_MELS, features

INPUT = "input_features"
OUTPUT = "logits"
"""Named so upstream, but the exported graph ends in a sigmoid: the value is a probability."""


class SmartTurnModel:
    """A smart-turn v3 ONNX session and the scoring of PCM16 audio with it (thread-safe)."""

    def __init__(self, session: Any, path: Path, threads: int) -> None:
        self.session = session
        self.path = path
        self.threads = threads

    @staticmethod
    def stopper() -> Any:
        """Options for one scoring; ``stopper().terminate = True`` aborts that run."""
        import onnxruntime

        return onnxruntime.RunOptions()

    def score(self, pcm: bytes, stop: Any) -> float | None:
        """The probability that the turn is complete; None if ``stop`` ended the run early.

        Runs in a worker thread: a few ms of features, then ~25 ms of network on one core.
        """
        if stop.terminate:
            return None
        inputs = {INPUT: features(pcm)}
        try:
            (probability,) = self.session.run([OUTPUT], inputs, stop)
        except Exception:
            if stop.terminate:  # onnxruntime's own "terminate flag" failure: a cancel, not a fault
                return None
            raise
        return float(probability.item(0))


_loaded: weakref.WeakValueDictionary[tuple[str, int], SmartTurnModel] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def load(path: Path, threads: int) -> SmartTurnModel:
    """The process's session for ``path`` on ``threads`` intra-op threads, loaded on first use.

    The caller has verified ``path``. Blocking (tens of milliseconds): call it in a worker thread.
    """
    key = (str(path.resolve()), threads)
    with _lock:
        found = _loaded.get(key)
        if found is None:
            found = _loaded[key] = SmartTurnModel(new_session(path, threads), path, threads)
        return found


def new_session(path: Path, threads: int) -> Any:
    """A fresh onnxruntime session of a smart-turn export (checked); :func:`load` shares them."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ProviderUnavailable("smart-turn needs onnxruntime: pip install onnxruntime") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ProviderUnavailable(f"smart-turn: cannot load {path} as an ONNX model: {exc}") from exc
    _check_signature(session, path)
    return session


def _check_signature(session: Any, path: Path) -> None:
    """Refuse a file that is not a smart-turn v3 export (a wrong model_path), with what it is."""
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    shape = inputs.get(INPUT)
    if shape is None or len(shape) != 3 or shape[1:] != [N_MELS, N_FRAMES] or OUTPUT not in outputs:
        raise ProviderUnavailable(
            f"smart-turn: {path} takes {inputs} and gives {sorted(outputs)}; expected "
            f"{INPUT} [batch, {N_MELS}, {N_FRAMES}] -> {OUTPUT} (a smart-turn v3 export)"
        )
