"""The blocking half of the provider: one utterance of PCM in, text and confidence out.

We drive CTranslate2's Whisper directly instead of ``WhisperModel.transcribe``: in faster-whisper
1.2.1 ``transcribe(chunk_length=15)`` still pads every segment's features to 3000 frames (30 s), so
the encoder, which dominates latency on CPU, costs the same as with the default window (measured
here: 0.48 s vs 0.14 s for a 15 s window). Building the 15 s batch ourselves is what makes finals
arrive in ~0.25 s. faster-whisper's log-mel extractor is reused so the features match what the
model was converted and validated with.

Everything here runs in a worker thread under the provider's CapacityLimiter(1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voiceflow.audio import pcm_to_float
from voiceflow.frames import FRAME_SAMPLES, SAMPLE_RATE
from voiceflow.models import ModelError

if TYPE_CHECKING:
    from voiceflow_whisper import WhisperConfig

HOP = 160
"""Samples per mel frame (10 ms)."""
MAX_TOKENS = 448
"""Whisper's decoder context."""
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
"""A window whose no-speech probability is high *and* whose text is improbable is dropped:
Whisper's own rule against transcribing breaths and line noise."""

Decoded = tuple[str, float | None]
"""Text and confidence (geometric-mean token probability) of one utterance."""


class Decoder:
    """A loaded CTranslate2 Whisper model plus the fixed decode options of one provider config."""

    def __init__(self, model_dir: Path, config: WhisperConfig) -> None:
        import ctranslate2
        import tokenizers
        from faster_whisper.feature_extractor import FeatureExtractor

        self._ct2 = ctranslate2
        tokenizer_file = model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"{model_dir} has no tokenizer.json")
        self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self._model: Any = ctranslate2.models.Whisper(
            str(model_dir),
            device="cpu",
            compute_type=config.compute_type,
            intra_threads=config.cpu_threads,
            inter_threads=1,
        )
        self._mel = FeatureExtractor(feature_size=self._model.n_mels)
        self._window = config.chunk_length * SAMPLE_RATE // HOP
        self._beam_size = config.beam_size
        self._silence_rms = 10.0 ** (config.silence_dbfs / 20.0)
        self._language = config.language
        self._eot = self._token_id("<|endoftext|>")
        if self._model.is_multilingual and config.language is not None:
            self._token_id(f"<|{config.language}|>")  # refuse an unknown language at load time

    def _token_id(self, token: str) -> int:
        found = self._tokenizer.token_to_id(token)
        if found is None:
            raise ModelError(f"the Whisper tokenizer has no {token} token")
        return int(found)

    def decode(self, pcm: bytes) -> Decoded:
        """Transcribe one utterance of PCM16 audio; empty text if nothing audible was said."""
        audio = pcm_to_float(pcm)
        if _loudest_frame_rms(audio) < self._silence_rms:
            return "", None
        features = self._mel(audio)[:, :-1]  # the last frame only covers the padding
        windows = max(1, math.ceil(features.shape[1] / self._window))
        batch = np.zeros((windows, features.shape[0], self._window), dtype=np.float32)
        for i in range(windows):
            chunk = features[:, i * self._window : (i + 1) * self._window]
            batch[i, :, : chunk.shape[1]] = chunk
        encoded = self._model.encode(self._ct2.StorageView.from_array(batch), to_cpu=False)
        prompt = self._prompt(encoded)
        seconds = min(audio.shape[0] / SAMPLE_RATE, self._window * HOP / SAMPLE_RATE)
        results = self._model.generate(
            encoded,
            [prompt] * windows,
            beam_size=self._beam_size,
            # A bound proportional to the audio stops a repetition loop from costing seconds.
            max_length=min(MAX_TOKENS, 16 + int(12 * seconds)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )
        texts: list[str] = []
        scores: list[float] = []
        for result in results:
            score = float(result.scores[0])
            if result.no_speech_prob > NO_SPEECH_PROB and score < LOW_LOGPROB:
                continue
            ids = [token for token in result.sequences_ids[0] if token < self._eot]
            text = self._tokenizer.decode(ids).strip()
            if text:
                texts.append(text)
                scores.append(score)
        confidence = math.exp(sum(scores) / len(scores)) if scores else None
        return " ".join(texts), confidence

    def _prompt(self, encoded: Any) -> list[str]:
        if not self._model.is_multilingual:
            return ["<|startoftranscript|>", "<|notimestamps|>"]
        language = self._language
        if language is None:
            # One detection on the first window: a turn is one language.
            best_token, _prob = self._model.detect_language(encoded)[0][0]
            language = best_token[2:-2]
        return ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"]

    def warm_up(self) -> None:
        """Decode a short tone once, so the first caller does not pay CTranslate2's lazy setup."""
        t = np.arange(SAMPLE_RATE // 2, dtype=np.float32) / SAMPLE_RATE
        tone = (0.1 * np.sin(2 * np.pi * 220.0 * t) * 32767).astype("<i2")
        self.decode(tone.tobytes())


def _loudest_frame_rms(audio: np.ndarray) -> float:
    """RMS of the loudest 20 ms frame: a cheap "is anything audible at all" test."""
    if audio.size == 0:
        return 0.0
    usable = audio.shape[0] - audio.shape[0] % FRAME_SAMPLES
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(audio))))
    frames = audio[:usable].reshape(-1, FRAME_SAMPLES)
    return float(np.sqrt(np.square(frames).mean(axis=1).max()))
