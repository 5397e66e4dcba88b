"""A streaming resampler that gives back every chunk's audio at once.

soxr, which :class:`voiceflow.audio.Resampler` wraps, filters in blocks: at 24 kHz → 16 kHz its
HQ setting returns nothing for a voice's first 20 ms chunk and ~30 ms for the second, LQ holds
back up to 20 ms. On a reply that is one frame (20 ms) added to the first audio the caller hears,
on every turn of every voice that does not speak 16 kHz (OpenAI and ElevenLabs at 24 kHz, Piper
at 22.05 kHz). This one is a plain polyphase FIR: output sample *n* is computed as soon as the
input sample it falls on has arrived, so a 20 ms chunk in gives 20 ms out, delayed by half the
filter, which spans :data:`TAPS_PER_PHASE` samples at the lower of the two rates (0.75 ms to or
from 16 kHz).

The filter is a Kaiser-windowed sinc with its cut-off at 90 % of the lower Nyquist frequency:
measured on tones, about 80 dB of alias and image rejection and a flat passband to 7 kHz for a
16 kHz output (the int16 noise floor bounds both), which is all a phone line or a speech codec
keeps. Rates whose ratio needs more than
:data:`MAX_PHASES` filter phases (22 051 Hz, say) fall back to soxr's LQ stream.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from voiceflow.audio import Resampler
from voiceflow.frames import SAMPLE_RATE

TAPS_PER_PHASE = 24
"""Filter taps per output sample: the delay is half this many input samples."""
FEW_PHASES = 8
"""Up to this many phases (24, 48, 32 and 8 kHz to 16 kHz) outputs are computed phase by phase."""
MAX_PHASES = 1024
"""Up-sampling factors beyond this (rates with no small common ratio) use soxr instead."""
PASSBAND = 0.9
"""Cut-off as a share of the lower of the two Nyquist frequencies."""
KAISER_BETA = 8.0
"""Window shape: ~80 dB side lobes with this many taps."""


class LowDelayResampler:
    """PCM16 from ``in_rate`` to ``out_rate``, chunk by chunk, holding back no whole samples:
    ``process`` returns every output sample whose input has arrived (``len(pcm) * out / in``
    on average). ``process(b"", last=True)`` returns the filter's tail (half the filter)."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        common = math.gcd(in_rate, out_rate)
        self._up, self._down = out_rate // common, in_rate // common
        self._fallback = Resampler(in_rate, out_rate, quality="LQ") if self._up > MAX_PHASES else None
        self._taps = TAPS_PER_PHASE * max(1, -(-self._down // self._up))
        """Taps per phase: the filter spans TAPS_PER_PHASE samples at the lower rate."""
        self._phases = _phases(self._up, self._down, self._taps) if self._fallback is None and in_rate != out_rate else None
        self._reversed = self._phases[:, ::-1].copy() if self._phases is not None else None
        """Each phase's taps oldest input first, to meet a sliding window of the input."""
        self._history = np.zeros(self._taps - 1, dtype=np.float32)
        """The last input samples, which the next chunk's first outputs still need."""
        self._taken = 0
        """Input samples received so far."""
        self._made = 0
        """Output samples produced so far."""

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._fallback is not None:
            return self._fallback.process(pcm, last=last)
        if self._phases is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        if last:
            samples = np.concatenate([samples, np.zeros(self._taps // 2, dtype="<i2")])
        if not len(samples):
            return b""
        keep = self._taps - 1
        window = np.empty(keep + len(samples), dtype=np.float32)
        window[:keep] = self._history
        window[keep:] = samples
        first_in = self._taken - keep  # the input index of window[0]
        self._taken += len(samples)
        # Output n rests on input floor(n * down / up): every n whose input sample has arrived.
        start, end = self._made, -(-self._taken * self._up // self._down)
        self._made = end
        self._history = window[-keep:]
        if end <= start:
            return b""
        out = np.empty(end - start, dtype=np.float32)
        if self._up <= FEW_PHASES:
            self._by_phase(window, first_in, start, out)
        else:
            position = np.arange(start, end, dtype=np.int64) * self._down
            newest = position // self._up - first_in
            taps = window[newest[:, None] - np.arange(self._taps)[None, :]]
            out[:] = np.einsum("ij,ij->i", taps, self._phases[position % self._up])
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        return out.astype("<i2").tobytes()

    def _by_phase(self, window: np.ndarray, first_in: int, start: int, out: np.ndarray) -> None:
        """Outputs ``start, start + 1, ...`` one phase at a time: every ``up``-th output uses the
        same taps on inputs ``down`` apart, which is one matrix-vector product over a strided
        view of the input (a few microseconds a frame, against ~25 for gathering every tap)."""
        assert self._reversed is not None
        item = window.itemsize
        for offset in range(min(self._up, len(out))):
            n = start + offset
            count = (len(out) - 1 - offset) // self._up + 1
            first_row = n * self._down // self._up - first_in - self._taps + 1
            # Row k: window[first_row + k * down :][: taps], a view (no copy of the input).
            rows = np.ndarray((count, self._taps), np.float32, window.data, first_row * item,
                              (self._down * item, item))
            out[offset :: self._up] = rows @ self._reversed[n * self._down % self._up]


@functools.lru_cache(maxsize=16)
def _phases(up: int, down: int, taps: int) -> np.ndarray:
    """The prototype low-pass split into ``up`` phases of ``taps`` taps: row p, tap j is
    coefficient ``p + j * up`` (the taps that meet real input samples at phase p)."""
    length = up * taps
    cutoff = PASSBAND * 0.5 / max(up, down)  # cycles per up-sampled sample
    k = np.arange(length) - (length - 1) / 2
    prototype = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(length, KAISER_BETA) * up
    phases: np.ndarray = prototype.reshape(taps, up).T.astype(np.float32)
    phases.flags.writeable = False
    return phases
