"""smart-turn v3.2 on onnxruntime: the built-in audio end-of-turn detector (``provider: smart-turn``).

Asked at each pause the VAD hears, it listens to the caller's last 8 s and says how likely it is
that they have finished (intonation, rhythm, a trailing "and..."), which the silence rule alone
cannot tell. The model is Whisper-tiny's encoder with a classifier (8.7 MB, BSD-2, from
pipecat-ai/smart-turn-v3); the features are computed in numpy (:mod:`voiceflow_smart_turn.features`)
so nothing heavier than onnxruntime is needed.

The weights are fetched once, explicitly, with ``voiceflow smart-turn fetch`` (see
:mod:`voiceflow_smart_turn.weights` and docs/end-of-turn-model.md): a call never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel
from pydantic import Field, model_validator

from voiceflow.compute import run_in_thread
from voiceflow.config.base import ModelFilePath, ProviderConfig
from voiceflow.models import ExpectedSha256, ModelError, verify
from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow.providers import ProviderError, ProviderUnavailable, TurnDetector
from voiceflow.tasks import create_task_group
from voiceflow_smart_turn.model import SmartTurnModel, load
from voiceflow_smart_turn.weights import SMART_TURN_V32, installed

if TYPE_CHECKING:
    import typer

__all__ = ["SMART_TURN_V32", "SmartTurnConfig", "SmartTurnDetector", "register_commands", "register_providers"]


class SmartTurnConfig(ProviderConfig):
    """The ``turn_detection:`` block for ``provider: smart-turn``."""

    provider: Literal["smart-turn"] = Field(
        "smart-turn", description="smart-turn v3.2 audio end-of-turn model (onnxruntime, CPU)."
    )
    threads: int = Field(
        1,
        ge=1,
        le=16,
        description="onnxruntime intra-op threads per inference. One leaves the other cores to STT, "
        "LLM and TTS, which are busy at the same moment (the reply is being prepared during the "
        "pause); see docs/end-of-turn-model.md for measured times on 1 and 2 threads.",
    )
    concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Inferences run at once in this process (one per pause of some call); more "
        "wait their turn. Raise it with the cores: threads x concurrency is the CPU this "
        "detector may take.",
    )
    model_path: ModelFilePath | None = Field(
        None,
        description="Use this smart-turn v3 ONNX file instead of the fetched v3.2 one (input "
        "input_features [batch, 80, 800], output logits [batch, 1]).",
    )
    sha256: ExpectedSha256 = None

    @model_validator(mode="after")
    def _sha_needs_path(self) -> SmartTurnConfig:
        if self.sha256 is not None and self.model_path is None:
            raise ValueError("sha256 is only used with model_path (the fetched model is already pinned)")
        return self


class SmartTurnDetector(TurnDetector[SmartTurnConfig]):
    """smart-turn v3.2 on onnxruntime: end-of-turn probability from the caller's last 8 s of audio."""

    name = "smart-turn"
    config_model = SmartTurnConfig

    def __init__(self, config: SmartTurnConfig) -> None:
        super().__init__(config)
        self._model: SmartTurnModel | None = None
        self._limiter = anyio.CapacityLimiter(config.concurrency)

    async def prepare(self) -> None:
        if self._model is None:
            self._model = await run_in_thread(self._load, abandon_on_cancel=True)

    async def aclose(self) -> None:
        self._model = None

    async def turn_complete(self, audio: bytes, transcript: str) -> float:
        """Features and inference in a worker thread; a cancel stops the inference at once."""
        model = self._model
        if model is None:
            raise ProviderError("smart-turn: turn_complete() called before prepare()")
        if len(audio) < 2:
            raise ProviderError("smart-turn: no audio to judge")
        stop = model.stopper()
        async with create_task_group() as group:
            group.start_soon(_terminate_when_cancelled, stop)
            try:
                probability = await run_in_thread(model.score, audio, stop, limiter=self._limiter)
            finally:
                group.cancel_scope.cancel()
        if probability is None:  # only a cancel stops a run, and it is raised at this checkpoint
            await anyio.lowlevel.checkpoint()
            raise ProviderError("smart-turn: inference stopped")
        return probability

    def _model_path(self) -> Path:
        """The verified model file: the fetched, pinned one, or the user's (hash-checked if pinned)."""
        cfg = self.config
        try:
            if cfg.model_path is None:
                return installed(SMART_TURN_V32)
            path = cfg.model_path.expanduser()
            if not path.is_file():
                raise ModelError(f"model_path {path} does not exist")
            return verify(path, cfg.sha256) if cfg.sha256 else path
        except ModelError as exc:
            raise ProviderUnavailable(f"smart-turn: {exc}") from exc

    def _load(self) -> SmartTurnModel:
        """Runs in a worker thread: hashing the file and creating the session take ~35 ms."""
        return load(self._model_path(), self.config.threads)


async def _terminate_when_cancelled(stop: Any) -> None:
    """Sleeps beside an inference; when the caller is cancelled, so is this, and it aborts the run
    (setting the flag after a finished run is harmless)."""
    try:
        await anyio.sleep_forever()
    finally:
        stop.terminate = True


@hookimpl
def register_providers(register: Register) -> None:
    register(SmartTurnDetector)


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from voiceflow_smart_turn.cli import app

    cli.add_typer(app, name="smart-turn")
