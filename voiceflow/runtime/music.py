"""Is it music (or a tone) rather than a person? For callers who put the agent on hold.

A voice detector fires on hold music as readily as on speech, and a recogniser then hears lyrics
or nothing; answering either is wrong. Two classic features tell them apart without a model:

* **low-energy frames**: speech stops and starts at the rate of syllables and words, so a good
  share of its 20 ms frames are far quieter than the average; continuous music and tones have
  almost none;
* **spectral stability**: a note or a chord holds its spectrum for hundreds of milliseconds, so
  consecutive frames' spectra are nearly the same (cosine similarity > 0.9); speech's formants
  and pitch glide.

Measured on sox-made music and tones, espeak-ng speech and the pocketsphinx-testdata recordings
(read speech included): speech has 20–38 % low-energy frames and 22–65 % stable steps;
continuous music and tones 0 % and 84–100 %.
The rule needs both features, so speech read without pauses is not taken for music. Music with
long rests, or sung vocals, can still pass for speech: then the recogniser's empty or unclear
transcript is the last line of defence (see ``unhappy_paths.hold``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voiceflow.frames import SAMPLE_RATE

FRAME = SAMPLE_RATE // 50
MIN_SECONDS = 1.0
"""Shorter audio is not judged (too few frames to tell)."""
MAX_LOW_ENERGY = 0.1
MIN_STABILITY = 0.75
SIMILAR = 0.9
"""Consecutive frames' spectra at least this alike (cosine) make a stable step."""


@dataclass(frozen=True, slots=True)
class MusicVerdict:
    music: bool
    low_energy: float
    """Share of active frames quieter than half the mean."""
    stability: float
    """Share of frame-to-frame steps whose spectra are nearly the same."""

    def describe(self) -> str:
        return f"low-energy frames {self.low_energy:.0%}, stable spectrum {self.stability:.0%}"


def judge_music(pcm: bytes) -> MusicVerdict | None:
    """The verdict on PCM16 16 kHz audio, or ``None`` if there is too little of it."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    count = len(samples) // FRAME
    if count * FRAME < MIN_SECONDS * SAMPLE_RATE:
        return None
    frames = samples[: count * FRAME].reshape(count, FRAME)
    energy = np.sqrt(np.mean(frames * frames, axis=1))
    active = energy > energy.max() * 0.05
    if active.sum() < MIN_SECONDS * 50 * 0.5:
        return None
    low_energy = float(np.mean(energy[active] < 0.5 * energy[active].mean()))
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME), n=1024, axis=1))[:, 5:]  # above ~80 Hz: not hum
    unit = spectrum / (np.linalg.norm(spectrum, axis=1, keepdims=True) + 1e-12)
    similar = np.sum(unit[1:] * unit[:-1], axis=1) > SIMILAR
    both = active[1:] & active[:-1]
    stability = float(np.mean(similar[both])) if both.any() else 0.0
    return MusicVerdict(low_energy <= MAX_LOW_ENERGY and stability >= MIN_STABILITY, low_energy, stability)
