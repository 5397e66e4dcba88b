"""Silero VAD v6 on onnxruntime: the built-in voice-activity detector.

The ONNX file is the one faster-whisper ships (``faster_whisper/assets/silero_vad_v6.onnx``), so
the offline install needs no extra download; it is verified by sha256 before it is loaded. One
:class:`onnxruntime.InferenceSession` is shared by every call; each call gets a small
:class:`~voiceflow_silero.stream.SileroStream` holding its own recurrent state. The model runs in
``workers`` worker threads, off the event loop: one :class:`~voiceflow_silero.batcher.ThreadBatcher`
per provider gathers every call's windows of the same instant into one thread hand-off
(``workers: 0`` scores on the event loop instead).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import Field, model_validator

from voiceflow.compute import run_in_thread
from voiceflow.config.base import ModelFilePath, ProviderConfig
from voiceflow.models import ExpectedSha256, ModelError, ModelFile, PackagePart, ensure_model_file, verify
from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow.providers import ProviderError, ProviderUnavailable, VADProvider
from voiceflow_silero.batch_model import batch_model
from voiceflow_silero.batcher import ThreadBatcher
from voiceflow_silero.scoring import Window, score_windows
from voiceflow_silero.stream import SileroStream

__all__ = ["SILERO_V6", "SileroConfig", "SileroStream", "SileroVAD", "register_providers"]

SILERO_V6 = ModelFile(
    name="silero_vad_v6.onnx",
    sha256="4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
    size=1_245_151,
    parts=(PackagePart("faster_whisper", "assets/silero_vad_v6.onnx", "faster-whisper==1.2.1"),),
)
"""The pinned default model: a single part, so it is verified where pip installed it."""

log = structlog.get_logger("voiceflow.silero")

_INPUTS = {"input", "h", "c"}
WORKERS = 2
"""Default worker threads: both cores of the 2-core machine this was measured on."""
GATHER_MS = 0.0
"""Default gather window (see ``gather_ms``)."""


class SileroConfig(ProviderConfig):
    """The ``vad:`` block for ``provider: silero``."""

    provider: Literal["silero"] = Field("silero", description="Silero VAD v6 (onnxruntime, CPU).")
    threshold: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Speech probability at or above which a 32 ms window counts as voiced. Speech "
        "ends only when the probability drops below threshold - 0.15 (hysteresis), so breathy word "
        "endings do not cut a segment short.",
    )
    start_secs: float = Field(
        0.1,
        ge=0.0,
        le=2.0,
        description="Seconds of continuous speech before SPEECH_START fires. Higher ignores clicks "
        "and coughs; lower reacts faster to barge-in. Declared on the first 20 ms frame this long "
        "after the first voiced 32 ms window, the latest window still voiced.",
    )
    stop_secs: float = Field(
        0.2,
        ge=0.0,
        le=5.0,
        description="Seconds of silence before SPEECH_END fires. This is the floor of the turn "
        "latency when no end-of-turn model is used. Counted from where the speech's energy "
        "ended (Silero's probability lags it by up to three windows), declared on the first "
        "20 ms frame this long after it, the latest window quiet.",
    )
    threads: int = Field(
        1,
        ge=1,
        le=16,
        description="onnxruntime intra-op threads per window. One is fastest for this tiny model "
        "(a window is too small to split); use workers to spread many calls over cores.",
    )
    workers: int = Field(
        WORKERS,
        ge=0,
        le=16,
        description="Worker threads scoring the windows of every call of this process, so the "
        "event loop never runs the model. Each takes whatever windows are waiting in one "
        "hand-off: more calls make bigger batches, not more thread switches. Two use both cores "
        "of a 2-core machine; 0 scores on the event loop (least CPU, no hand-off: for a few calls "
        "on a machine whose cores are already saturated).",
    )
    gather_ms: float = Field(
        GATHER_MS,
        ge=0.0,
        le=10.0,
        description="Milliseconds a hand-off waits for other calls' windows before it leaves. 0 "
        "takes only the windows of the same instant (and those that piled up while the workers "
        "were busy): the lowest latency, which measured best; more means fewer, larger batches, "
        "each window up to this much later.",
    )
    model_path: ModelFilePath | None = Field(
        None,
        description="Use this Silero ONNX file instead of the one shipped in faster-whisper. It "
        "must take inputs input/h/c like the faster-whisper v6 export (16 kHz only).",
    )
    sha256: ExpectedSha256 = None

    @model_validator(mode="after")
    def _sha_needs_path(self) -> SileroConfig:
        if self.sha256 is not None and self.model_path is None:
            raise ValueError("sha256 is only used with model_path (the built-in model is already pinned)")
        return self


class SileroVAD(VADProvider[SileroConfig]):
    """Silero VAD v6 on onnxruntime: accurate onsets/offsets, ~0.1 ms per 20 ms frame on CPU."""

    name = "silero"
    config_model = SileroConfig

    def __init__(self, config: SileroConfig) -> None:
        super().__init__(config)
        self._session: Any = None
        self._batcher: ThreadBatcher[Window] | None = None

    async def prepare(self) -> None:
        if self._session is None:
            self._session, batch_session = await run_in_thread(self._load, abandon_on_cancel=True)
            if self.config.workers:
                self._batcher = ThreadBatcher(
                    partial(score_windows, self._session, batch_session),
                    threads=self.config.workers,
                    gather=self.config.gather_ms / 1000,
                )

    async def aclose(self) -> None:
        self._session = self._batcher = None

    @property
    def batcher(self) -> ThreadBatcher[Window] | None:
        """The provider's window batcher once prepared (its counters show the batching); None
        with ``workers: 0``."""
        return self._batcher

    def create_stream(self) -> SileroStream:
        if self._session is None:
            raise ProviderError("silero: create_stream() called before prepare()")
        cfg = self.config
        return SileroStream(
            self._session,
            threshold=cfg.threshold,
            start_secs=cfg.start_secs,
            stop_secs=cfg.stop_secs,
            batcher=self._batcher,
        )

    def _model_path(self) -> Path:
        """The verified model file: the pinned built-in one, or the user's (hash-checked if pinned)."""
        cfg = self.config
        try:
            if cfg.model_path is None:
                return ensure_model_file(SILERO_V6)
            path = cfg.model_path.expanduser()
            if not path.is_file():
                raise ModelError(f"silero model_path {path} does not exist")
            return verify(path, cfg.sha256) if cfg.sha256 else path
        except ModelError as exc:
            raise ProviderUnavailable(f"silero: {exc}") from exc

    def _load(self) -> tuple[Any, Any | None]:
        """Runs in a worker thread: hashing and session creation take tens of milliseconds.
        The plain model scores one window; the batch model (for the workers) many in one run."""
        path = self._model_path()
        try:
            import onnxruntime
        except ImportError as exc:
            raise ProviderUnavailable("silero needs onnxruntime: pip install onnxruntime") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        model = path.read_bytes()
        try:
            session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ProviderUnavailable(f"silero: cannot load {path}: {exc}") from exc
        names = {inp.name for inp in session.get_inputs()}
        if names != _INPUTS:
            raise ProviderUnavailable(
                f"silero: {path} has inputs {sorted(names)}, expected {sorted(_INPUTS)} "
                "(the faster-whisper v6 export)"
            )
        if not self.config.workers:
            return session, None
        try:
            batch = onnxruntime.InferenceSession(
                batch_model(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - the workers score window by window instead
            log.warning("silero: no batch model, scoring window by window", model=str(path), error=str(exc))
            return session, None
        return session, batch


@hookimpl
def register_providers(register: Register) -> None:
    register(SileroVAD)
