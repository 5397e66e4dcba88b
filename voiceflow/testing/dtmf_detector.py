"""A keypad-tone (DTMF) detector, to prove that the tones an agent plays really are keys.

Tests of in-band keys must not trust the generator that made them: this listens to the audio as
an IVR's receiver would, with the Goertzel algorithm (the DTFT at each of the eight keypad
frequencies, computed sample by sample, exact at any frequency), over blocks of 25.6 ms (205
samples at 8 kHz, the classic size: its resolution separates neighbouring keypad frequencies)
every 12.8 ms, and with the acceptance rules of telephone receivers (ITU-T Q.24):

* one low and one high tone, each at least 6 dB above the other three of its group;
* twist within 4 dB (high louder) and 8 dB (low louder);
* the pair carries most of the block's power (speech and music spread theirs);
* the key held at least 40 ms, and a key ends after 40 ms without it (so one press is one key,
  and the gap between presses must be real).

Public test API: plugin authors can check their own transports' keys with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voiceflow.dtmf import HIGH, KEYS, LOW

BLOCK_SECONDS = 205 / 8000
MIN_KEY_SECONDS = 0.04
MIN_GAP_SECONDS = 0.04
MIN_DBFS = -40.0
"""Quieter tones are not keys (a receiver's sensitivity floor is about -25 dBm0; this is lower)."""
GROUP_MARGIN = 10 ** (6 / 10)
FORWARD_TWIST, REVERSE_TWIST = 10 ** (4 / 10), 10 ** (8 / 10)
MIN_SHARE = 0.6
"""The two tones' share of the block's power."""


@dataclass(frozen=True, slots=True)
class Key:
    key: str
    start: float
    end: float
    """Seconds from the start of the audio."""


def goertzel_powers(
    blocks: npt.NDArray[np.float64], frequencies: tuple[float, ...], sample_rate: int
) -> npt.NDArray[np.float64]:
    """The power of each frequency in each block (rows), as the mean-square of a sine of that
    amplitude (a full-scale sine gives 0.5). The recursion runs over the samples; all blocks and
    frequencies move through it together."""
    coefficient = 2.0 * np.cos(2.0 * np.pi * np.asarray(frequencies) / sample_rate)
    s1 = np.zeros((len(blocks), len(frequencies)))
    s2 = np.zeros_like(s1)
    for n in range(blocks.shape[1]):
        s1, s2 = blocks[:, n, None] + coefficient * s1 - s2, s1
    magnitude2 = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    size = blocks.shape[1]
    return np.asarray(2.0 * magnitude2 / (size * size))


def block_key(low: npt.NDArray[np.float64], high: npt.NDArray[np.float64], total: float) -> str | None:
    """The key sounding throughout a block, from its tones' powers and its mean-square."""
    if total <= 0 or 10 * np.log10(total) < MIN_DBFS:
        return None
    row, col = int(np.argmax(low)), int(np.argmax(high))
    lo, hi = float(low[row]), float(high[col])
    if any(p * GROUP_MARGIN > lo for i, p in enumerate(low) if i != row):
        return None
    if any(p * GROUP_MARGIN > hi for i, p in enumerate(high) if i != col):
        return None
    if hi > lo * FORWARD_TWIST or lo > hi * REVERSE_TWIST:
        return None
    if (lo + hi) < MIN_SHARE * total:
        return None
    return KEYS[row * 4 + col]


def detect_keys(samples: npt.NDArray[np.int16] | bytes, sample_rate: int) -> list[Key]:
    """The keys pressed in PCM16 mono audio at ``sample_rate``, in order."""
    pcm = np.frombuffer(samples, dtype="<i2") if isinstance(samples, bytes) else samples
    x = pcm.astype(np.float64) / 32768.0
    size = round(BLOCK_SECONDS * sample_rate)
    hop = size // 2
    starts = range(0, max(0, len(x) - size + 1), hop)
    frames = np.array([x[at : at + size] for at in starts]).reshape(len(starts), size)
    powers = goertzel_powers(frames, LOW + HIGH, sample_rate)
    totals = np.mean(frames * frames, axis=1)
    blocks = [block_key(p[:4], p[4:], float(total)) for p, total in zip(powers, totals, strict=True)]
    runs: list[tuple[str | None, int, int]] = []  # (key, first block, last block)
    for index, key in enumerate(blocks):
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1], index)
        else:
            runs.append((key, index, index))
    merged: list[tuple[str, int, int]] = []
    for position, (key, first, last) in enumerate(runs):
        if key is None:
            continue
        gap_before = position >= 2 and runs[position - 1][0] is None and runs[position - 2][0] == key
        if gap_before and merged and merged[-1][0] == key:
            none_blocks = runs[position - 1][2] - runs[position - 1][1] + 1
            if ((none_blocks + 1) * hop - size) / sample_rate < MIN_GAP_SECONDS:
                merged[-1] = (key, merged[-1][1], last)  # a dropout, not a gap: the key goes on
                continue
        merged.append((key, first, last))
    found = []
    for key, first, last in merged:
        start, end = first * hop / sample_rate, (last * hop + size) / sample_rate
        if end - start >= MIN_KEY_SECONDS:
            found.append(Key(key, start, end))
    return found


def detected(samples: npt.NDArray[np.int16] | bytes, sample_rate: int) -> str:
    """The keys pressed, as one string (``"12#"``)."""
    return "".join(key.key for key in detect_keys(samples, sample_rate))
