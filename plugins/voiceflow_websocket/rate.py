"""Any client rate ↔ the internal 16 kHz, streaming, with a fixed delay of about a millisecond.

Why not soxr (:class:`voiceflow.audio.Resampler`): its streaming resampler works in blocks. On
20 ms chunks it answers only every 60 ms at "LQ" and after 100 ms at "HQ", and it holds the end of
each reply until the next reply pushes it out; "QQ" answers at once but does not filter, so
downsampling folds sibilants back into the band as hiss. A live call needs every 20 ms in to come
out at once.

This is band-limited interpolation: each output sample is a windowed-sinc weighted sum of the
input samples around its position, with the cut-off just under the lower of the two Nyquist
frequencies (so downsampling removes what would alias, upsampling removes the images). The
kernel spans :data:`ZERO_CROSSINGS` lobes each side at the lower rate, so the output lags the input
by that many samples of the lower rate (1 ms at 8 kHz… 0.5 ms at 16 kHz).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

ZERO_CROSSINGS = 8
"""Sinc lobes each side of the kernel: more is sharper and a little later."""
PASS = 0.9
"""The cut-off as a share of the lower Nyquist frequency (7.2 kHz between 16 and 48 kHz)."""
BETA = 8.0
"""Kaiser window shape: about 80 dB of stop-band rejection."""
RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
"""The rates a client may use. Output positions repeat every ``out / gcd(in, out)`` samples, and
one kernel is computed per position: for these, at most a few hundred."""

Floats = npt.NDArray[np.float64]


class Resample:
    """PCM16 mono from ``in_rate`` to ``out_rate``; one instance per direction of one call.

    Positions are kept as exact integers (output ``n`` sits at input ``n * M / L``), so a call of
    any length never drifts."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.identity = in_rate == out_rate
        g = math.gcd(in_rate, out_rate)
        self._phases, self._step = out_rate // g, in_rate // g  # L, M
        cutoff = PASS * 0.5 * min(in_rate, out_rate) / in_rate  # cycles per input sample
        self._half = 0 if self.identity else math.ceil(ZERO_CROSSINGS * 0.5 / cutoff)
        self._taps = np.arange(-self._half + 1, self._half + 1)
        self._kernels = self._kernels_for(cutoff)
        self._buffer: Floats = np.zeros(self._half)
        self._start = -self._half
        """The stream index of ``_buffer[0]`` (silence before the call's first sample)."""
        self._next = 0
        """The next output sample's index."""

    def _kernels_for(self, cutoff: float) -> Floats:
        if self.identity:
            return np.zeros((1, 0))
        fractions = np.arange(self._phases) / self._phases
        distance = fractions[:, None] - self._taps[None, :]
        ramp = np.clip(1.0 - (distance / self._half) ** 2, 0.0, None)
        kernels = np.sinc(2 * cutoff * distance) * np.i0(BETA * np.sqrt(ramp))
        return np.asarray(kernels / kernels.sum(axis=1, keepdims=True), dtype=np.float64)  # unity gain at DC

    def __call__(self, pcm: bytes) -> bytes:
        if self.identity:
            return pcm
        x = np.concatenate((self._buffer, np.frombuffer(pcm, dtype="<i2").astype(np.float64)))
        newest = self._start + len(x) - 1
        last = ((newest - self._half) * self._phases + self._phases - 1) // self._step  # whole kernel arrived
        n = np.arange(self._next, max(self._next, last + 1), dtype=np.int64)
        exact = n * self._step
        base, phase = exact // self._phases - self._start, exact % self._phases
        out = (x[base[:, None] + self._taps[None, :]] * self._kernels[phase]).sum(axis=1)
        self._next += len(n)
        keep = (self._next * self._step) // self._phases - self._half + 1 - self._start
        self._buffer, self._start = x[keep:], self._start + keep
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())
