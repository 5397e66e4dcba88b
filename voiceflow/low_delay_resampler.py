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
"""Up to this many phases (24, 48, 32 and 8 kHz to 16 kHz) outputs are computed a block at a time."""
MAX_PHASES = 1024
"""Up-sampling factors beyond this (rates with no small common ratio) use soxr instead."""
PASSBAND = 0.9
"""Cut-off as a share of the lower of the two Nyquist frequencies."""
KAISER_BETA = 8.0
"""Window shape: ~80 dB side lobes with this many taps."""


class LowDelayResampler:
    """PCM16 from ``in_rate`` to ``out_rate``, chunk by chunk: ``process`` returns the output
    samples whose input has arrived (``len(pcm) * out / in`` on average; at rates with few
    phases, whole blocks of them, so up to ``up - 1`` samples, under half a millisecond, wait
    for the next chunk). ``process(b"", last=True)`` returns the filter's tail."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        common = math.gcd(in_rate, out_rate)
        self._up, self._down = out_rate // common, in_rate // common
        self._fallback = Resampler(in_rate, out_rate, quality="LQ") if self._up > MAX_PHASES else None
        self._taps = TAPS_PER_PHASE * max(1, -(-self._down // self._up))
        """Taps per phase: the filter spans TAPS_PER_PHASE samples at the lower rate."""
        self._phases = (_phases(self._up, self._down, self._taps)
                        if self._fallback is None and in_rate != out_rate else None)
        self._block = (_block_taps(self._up, self._down, self._taps)
                       if self._phases is not None and self._up <= FEW_PHASES else None)
        self._history = np.zeros(self._taps - 1, dtype=np.float32)
        """Input the next outputs still need (zeros before the stream began)."""
        self._history_from = -(self._taps - 1)
        """The input index of ``_history[0]``."""
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
        if last:  # push the filter's tail out (and, for the block path, finish the last block)
            samples = np.concatenate([samples, np.zeros(self._taps // 2 + self._down, dtype="<i2")])
        if not len(samples):
            return b""
        window = np.empty(len(self._history) + len(samples), dtype=np.float32)
        window[: len(self._history)] = self._history
        window[len(self._history) :] = samples
        first_in = self._history_from
        self._taken += len(samples)
        out = self._by_block(window, first_in) if self._block is not None else self._by_sample(window, first_in)
        keep_from = self._made * self._down // self._up - (self._taps - 1)
        self._history, self._history_from = window[keep_from - first_in :], keep_from
        if out is None:
            return b""
        np.rint(out, out=out)
        # The two ufuncs np.clip calls, without its Python wrappers (a third of the cost here).
        np.minimum(out, 32767.0, out=out)
        np.maximum(out, -32768.0, out=out)
        return out.astype("<i2").tobytes()

    def _by_block(self, window: np.ndarray, first_in: int) -> np.ndarray | None:
        """Whole blocks of ``up`` outputs (one per ``down`` inputs), every block in one
        matrix product over a strided view of the input: a few microseconds a frame, against
        ~25 for gathering every tap. Holds back at most ``up - 1`` outputs (< 0.5 ms)."""
        assert self._block is not None
        reach = self._block.shape[0] - self._taps  # how far past its first input a block reads
        first_block = self._made // self._up
        end_block = (self._taken - 1 - reach) // self._down + 1 if self._taken - 1 >= reach else 0
        if end_block <= first_block:
            return None
        item = window.itemsize
        first_row = first_block * self._down - (self._taps - 1) - first_in
        # Row k: the inputs block k reads, a view (no copy of the input).
        rows = np.ndarray((end_block - first_block, self._block.shape[0]), np.float32, window.data,
                          first_row * item, (self._down * item, item))
        self._made = end_block * self._up
        out: np.ndarray = (rows @ self._block).ravel()
        return out

    def _by_sample(self, window: np.ndarray, first_in: int) -> np.ndarray | None:
        """Every output whose newest input has arrived, each gathered tap by tap (rates with
        many phases: 22.05 and 44.1 kHz)."""
        assert self._phases is not None
        start, end = self._made, -(-self._taken * self._up // self._down)
        if end <= start:
            return None
        self._made = end
        position = np.arange(start, end, dtype=np.int64) * self._down
        newest = position // self._up - first_in
        taps = window[newest[:, None] - np.arange(self._taps)[None, :]]
        out: np.ndarray = np.einsum("ij,ij->i", taps, self._phases[position % self._up])
        return out


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


@functools.lru_cache(maxsize=16)
def _block_taps(up: int, down: int, taps: int) -> np.ndarray:
    """One block's filter as a matrix: column r makes output ``k * up + r`` from the inputs
    block k reads, which start ``taps - 1`` before input ``k * down``. Its newest input is
    ``k * down + r * down // up``, and its taps are phase ``r * down % up``, oldest first."""
    phases = _phases(up, down, taps)
    reach = (up - 1) * down // up
    block = np.zeros((taps + reach, up), dtype=np.float32)
    for r in range(up):
        offset = r * down // up
        block[offset : offset + taps, r] = phases[r * down % up, ::-1]
    block.flags.writeable = False
    return block
