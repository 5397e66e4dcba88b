"""The Piper TTS provider: one loaded voice per config, shared by every session.

Piper's own ``PiperVoice.load`` builds its onnxruntime session with default options, i.e. one
intra-op thread per core, which would fight the LLM for the two cores. We build the session
ourselves with the public onnxruntime API (``threads`` intra-op threads, no spinning) and hand it
to the ``PiperVoice`` dataclass; phonemisation and inference still go through piper's public
methods. Piper yields one chunk per sentence; we go one step finer and synthesise long sentences
clause by clause, so the first audio of a long clause arrives after a short inference.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from voiceflow.compute import StopFlag, iterate_in_thread, run_in_thread
from voiceflow.frames import TTSAudio
from voiceflow.models import ModelError, ensure_model_file, verify
from voiceflow.providers import ProviderError, ProviderUnavailable, TTSProvider
from voiceflow_piper.config import VOICES, PiperConfig

CHUNK_SECONDS = 0.5
"""Longest chunk handed out: finer than a sentence so back-pressure and barge-in act sooner."""

MIN_PIECE_PHONEMES = 40
"""A clause shorter than this is joined to the next one: tiny inferences sound clipped."""

_CLAUSE_MARKS = frozenset(",;:")


class PiperTTS(TTSProvider[PiperConfig]):
    """Neural TTS in-process via Piper on onnxruntime (joe voice from PyPI by default)."""

    name = "piper"
    config_model = PiperConfig

    def __init__(self, config: PiperConfig) -> None:
        super().__init__(config)
        self._voice: Any = None
        self._syn_config: Any = None
        self._limiter = anyio.CapacityLimiter(1)

    @property
    def sample_rate(self) -> int:
        if self._voice is None:
            raise ProviderError("piper: the voice is not loaded; call prepare() first")
        return int(self._voice.config.sample_rate)

    def voice_files(self) -> tuple[Path, Path]:
        """The voice's .onnx and .json paths, verified where hashes are known."""
        config = self.config
        try:
            if config.model_path is None:
                model, json_file = VOICES[config.voice]
                return ensure_model_file(model), ensure_model_file(json_file)
            json_path = config.config_path or Path(f"{config.model_path}.json")
            for path in (config.model_path, json_path):
                if not path.is_file():
                    raise ModelError(f"{path} does not exist")
            if config.sha256 is not None:
                verify(config.model_path, config.sha256)
            return config.model_path, json_path
        except ModelError as exc:
            raise ProviderUnavailable(f"piper: {exc}") from exc

    async def prepare(self) -> None:
        """Load the voice once and warm it up (the first inference allocates arenas)."""
        await run_in_thread(self._load, limiter=self._limiter, abandon_on_cancel=True)

    async def aclose(self) -> None:
        await run_in_thread(self._unload, limiter=self._limiter)

    def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        """Stream PCM16 audio for ``text``; stopping the iteration stops before the next piece."""
        return iterate_in_thread(lambda stop: self._chunks(text, stop), limiter=self._limiter, name="piper")

    # --- worker-thread side ---------------------------------------------------------------

    def _chunks(self, text: str, stop: StopFlag) -> Iterator[TTSAudio]:
        voice = self._voice
        if voice is None:
            raise ProviderError("piper: synthesize() called before prepare()")
        rate = self.sample_rate
        step = int(CHUNK_SECONDS * rate) * 2
        silence = b"\0\0" * int(self.config.sentence_silence * rate)
        sentences = [s for s in voice.phonemize(text) if s]
        for index, phonemes in enumerate(sentences):
            pieces = _clauses(phonemes) if self.config.split_clauses else [phonemes]
            for piece in pieces:
                if stop.is_set():
                    return
                pcm = self._infer(voice, piece)
                for start in range(0, len(pcm), step):
                    yield TTSAudio(pcm[start : start + step], rate)
            if silence and index < len(sentences) - 1:
                yield TTSAudio(silence, rate)

    def _infer(self, voice: Any, phonemes: list[str]) -> bytes:
        """One onnxruntime run; peak-normalised like piper's own synthesize(), then ``volume``."""
        try:
            audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes), self._syn_config)
        except Exception as exc:  # onnxruntime reports failures as its own exception types
            raise ProviderError(f"piper: inference failed: {exc}") from exc
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak < 1e-8:
            return np.zeros(audio.size, dtype="<i2").tobytes()
        scaled = np.clip(audio * (self.config.volume / peak), -1.0, 1.0) * 32767.0
        return bytes(scaled.astype("<i2").tobytes())

    def _load(self) -> None:
        if self._voice is not None:
            return
        try:
            import onnxruntime
            from piper import PiperConfig as VoiceConfig
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise ProviderUnavailable(
                "piper: piper-tts / onnxruntime are not installed: pip install 'voiceflow[offline]'"
            ) from exc
        model_path, json_path = self.voice_files()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Spinning worker threads burn a core waiting for work that the LLM needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            voice_config = VoiceConfig.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # bad JSON, missing keys, or an ONNX file onnxruntime rejects
            raise ProviderUnavailable(f"piper: cannot load voice {model_path}: {exc}") from exc
        voice = PiperVoice(session=session, config=voice_config)
        self._syn_config = SynthesisConfig(
            length_scale=self.config.length_scale,
            noise_scale=self.config.noise_scale,
            noise_w_scale=self.config.noise_w_scale,
        )
        self._infer(voice, voice.phonemize("Hello.")[0])  # warm-up: espeak-ng init, onnx arenas
        self._voice = voice

    def _unload(self) -> None:
        self._voice = None


def _clauses(phonemes: list[str]) -> list[list[str]]:
    """Split one sentence's phonemes after clause punctuation into pieces of a useful length.

    Piper's espeak phonemiser marks a clause end as the punctuation phoneme followed by a space.
    """
    pieces: list[list[str]] = []
    current: list[str] = []
    for index, phoneme in enumerate(phonemes):
        current.append(phoneme)
        at_boundary = phoneme in _CLAUSE_MARKS and index + 1 < len(phonemes)
        if at_boundary and len(current) >= MIN_PIECE_PHONEMES:
            pieces.append(current)
            current = []
    if current:
        if pieces and len(current) < MIN_PIECE_PHONEMES // 2:
            pieces[-1].extend(current)  # a short tail sounds better attached than on its own
        else:
            pieces.append(current)
    return pieces
