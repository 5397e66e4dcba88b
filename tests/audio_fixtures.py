"""Real audio for tests: recorded speech from Debian's pocketsphinx-testdata, synthetic speech
from espeak-ng, silence and noise, all as PCM16 mono at 16 kHz, plus text-comparison helpers.

Everything here is plain functions so any test module can import what it needs; a missing Debian
package skips the test that needs it instead of failing it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from voiceflow.audio import read_wav, split_frames
from voiceflow.frames import FRAME_SECONDS, SAMPLE_RATE, AudioFrame

POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
GOFORWARD_TEXT = "go forward ten meters"


def pocketsphinx_file(name: str) -> Path:
    """A file of pocketsphinx-testdata (e.g. ``goforward.raw``, ``cards/001.wav``); skips if absent."""
    path = POCKETSPHINX_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} missing: apt-get install pocketsphinx-testdata")
    return path


def pocketsphinx_pcm(name: str) -> bytes:
    """A recording from pocketsphinx-testdata as 16 kHz PCM16 (``.raw`` files already are)."""
    path = pocketsphinx_file(name)
    return path.read_bytes() if path.suffix == ".raw" else read_wav(path)


def goforward() -> bytes:
    """A man saying "go forward ten meters" (2.8 s, speech from ~0.50 s to ~2.37 s)."""
    return pocketsphinx_pcm("goforward.raw")


def espeak_pcm(text: str, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    """``text`` spoken by espeak-ng, resampled to 16 kHz PCM16; skips if espeak-ng is missing."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.skip("espeak-ng missing: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            [binary, "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        return read_wav(wav)


def silence(seconds: float) -> bytes:
    return b"\0\0" * round(seconds * SAMPLE_RATE)


def noise(seconds: float, dbfs: float = -60.0, seed: int = 0) -> bytes:
    """White noise at ``dbfs`` RMS: a quiet line, not digital silence."""
    rms = 32768.0 * 10.0 ** (dbfs / 20.0)
    samples = np.random.default_rng(seed).normal(0.0, rms, round(seconds * SAMPLE_RATE))
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def pad(pcm: bytes, before: float = 0.0, after: float = 0.0) -> bytes:
    """Digital silence around ``pcm``."""
    return silence(before) + pcm + silence(after)


def frames(pcm: bytes, t0: float = 0.0) -> list[AudioFrame]:
    """20 ms frames stamped with audio time from ``t0``, as a transport would deliver them."""
    return [AudioFrame(chunk, t0 + i * FRAME_SECONDS) for i, chunk in enumerate(split_frames(pcm))]


def seconds_of(pcm: bytes) -> float:
    return len(pcm) / (2 * SAMPLE_RATE)


def speech_bounds(pcm: bytes, below_peak_db: float = 25.0) -> tuple[float, float]:
    """Energy-based (start, end) of the speech in a clean recording: the first and last 10 ms
    frame within ``below_peak_db`` of the loudest one. A reference for VAD timing checks."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    hop = SAMPLE_RATE // 100
    usable = len(samples) - len(samples) % hop
    energy = np.square(samples[:usable].reshape(-1, hop)).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (-below_peak_db / 10.0))
    return float(loud[0] * hop / SAMPLE_RATE), float((loud[-1] + 1) * hop / SAMPLE_RATE)


_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def normalize_text(text: str) -> list[str]:
    """Lower-case words without punctuation; small numerals spelled out ("10" == "ten")."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) < len(_NUMBERS) else w for w in words]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over normalized words, divided by the reference length."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        prev_diag, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (ref_word != hyp_word))
    return row[-1] / max(len(ref), 1)
