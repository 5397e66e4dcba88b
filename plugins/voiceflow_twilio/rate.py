"""8 kHz ↔ 16 kHz for the phone line: exact 2:1 resampling with a fixed 3 ms delay.

Why not soxr (:class:`voiceflow.audio.Resampler`) here: on this path every 20 ms counts, and
soxr's streaming resampler works in blocks. Measured with soxr 1.1 on 20 ms chunks: at "HQ" and
"MQ" the first output comes after 5 chunks (100 ms), at "LQ" after 4 and then in bursts of 60 ms;
"QQ" answers at once but does not filter at all, so agent speech above 4 kHz (sibilants) would
fold back into the phone band as hiss. Worse, a block resampler holds the end of each reply
until the next reply pushes it out. The phone needs only the factor 2, and a 95-tap windowed-sinc
low-pass does that exactly: every 20 ms in gives 20 ms out, at once, with a constant delay of
47 samples at 16 kHz (2.9 ms). It is flat to 3.4 kHz (-0.2 dB, the top of the telephone band)
and rejects 85 dB from 4.4 kHz, which is what both directions need: removing what would alias
when halving, and the mirror images when doubling.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TAPS = 95
CUTOFF_HZ = 3700.0
HIGH_RATE = 16_000
DELAY_SECONDS = (TAPS - 1) / 2 / HIGH_RATE
"""How far the output lags the input (the filter's group delay, at either rate)."""

Floats = npt.NDArray[np.float64]


def _lowpass() -> Floats:
    n = np.arange(TAPS) - (TAPS - 1) / 2
    cutoff = CUTOFF_HZ / HIGH_RATE
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(TAPS, 8.0)
    return np.asarray(taps / taps.sum(), dtype=np.float64)


_LOWPASS = _lowpass()


class _Filter:
    """The low-pass at 16 kHz, with the last ``TAPS - 1`` samples kept between calls."""

    def __init__(self) -> None:
        self._history: Floats = np.zeros(TAPS - 1)

    def __call__(self, samples: Floats) -> Floats:
        joined = np.concatenate((self._history, samples))
        self._history = joined[len(joined) - (TAPS - 1):]
        return np.asarray(np.convolve(joined, _LOWPASS, mode="valid"), dtype=np.float64)

    def reset(self) -> None:
        self._history[:] = 0.0


def _to_pcm(samples: Floats) -> bytes:
    return bytes(np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes())


class Upsampler:
    """8 kHz PCM16 → 16 kHz PCM16 (caller audio), streaming."""

    def __init__(self) -> None:
        self._filter = _Filter()

    def __call__(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2")
        spread = np.zeros(2 * len(samples))
        spread[0::2] = 2.0 * samples  # every other sample zero: the filter fills them in
        return _to_pcm(self._filter(spread))


class Downsampler:
    """16 kHz PCM16 → 8 kHz PCM16 (agent audio), streaming; :meth:`reset` when playback is
    cleared, so the next reply does not start with the tail of the dropped one."""

    def __init__(self) -> None:
        self._filter = _Filter()
        self._odd = False
        """Whether the next input sample is an odd one (dropped): chunks may be odd lengths."""

    def __call__(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        filtered = self._filter(samples)
        kept = filtered[1 if self._odd else 0 :: 2]
        self._odd = (self._odd + len(samples)) % 2 == 1
        return _to_pcm(kept)

    def reset(self) -> None:
        self._filter.reset()
        self._odd = False
