"""Whisper log-mel features for smart-turn v3, in numpy alone.

smart-turn's encoder is Whisper's, trained on Whisper's 80-band log-mel spectrogram of an 8 s
window. Computing it here instead of through ``transformers`` or ``torch`` keeps the plugin to
numpy + onnxruntime (a few MB instead of hundreds), and every step is fixed by what the model was
trained on, so none of it is configurable:

1. the last 8 s of 16 kHz audio, zero-padded on the *left* to 128,000 samples (the speech always
   ends at the window's end);
2. that whole window normalised to zero mean and unit variance (the padding counts: the upstream
   reference pads first and then hands the full window to Whisper's normalising extractor, so a
   short utterance is scaled by its variance over 8 s, not over its own length);
3. a centred STFT (reflect-padded by half a window), periodic Hann window of 400 samples, hop 160:
   801 frames, of which the last is dropped, leaving 800;
4. power spectrum through 80 triangular Slaney-scale mel filters with Slaney area normalisation;
5. ``log10`` (floored at 1e-10), clamped to at most 8 decades below the window's maximum, then
   ``(x + 4) / 4``.

The filterbank is built once per process (:func:`mel_filterbank`). One call costs a few
milliseconds on one core, mostly the FFT, and uses no BLAS threads; it runs in the detector's
worker thread, never on the event loop.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 8
N_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS
"""Samples the model looks at: the last 8 s, left-padded with zeros when shorter."""
N_FFT = 400
HOP = 160
N_MELS = 80
N_FRAMES = N_SAMPLES // HOP
"""800 feature frames: the centred STFT gives one more, which Whisper's recipe drops."""

_NORM_EPS = 1e-7  # variance floor of the waveform normalisation (silence stays silence)
_LOG_FLOOR = 1e-10  # power floor before log10: digital silence becomes -10, not -inf
_DYNAMIC_RANGE = 8.0  # decades kept below the loudest bin

# The Slaney mel scale (Auditory Toolbox): linear up to 1 kHz at 200/3 Hz per mel, logarithmic
# above it with 27 mels per factor of 6.4 in frequency.
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]


def hz_to_mel(hz: Float64Array) -> Float64Array:
    """Slaney mels of frequencies in Hz."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    logarithmic = _BREAK_MEL + np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: Float64Array) -> Float64Array:
    """Frequencies in Hz of Slaney mels (the inverse of :func:`hz_to_mel`)."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _LINEAR_HZ_PER_MEL
    logarithmic = _BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _BREAK_MEL) - _BREAK_MEL))
    return np.where(mel >= _BREAK_MEL, logarithmic, linear)


@functools.cache
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS
) -> Float32Array:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters, evenly spaced in Slaney mels from 0 Hz to
    Nyquist, each scaled to unit area (``2 / bandwidth``) so wide high bands do not outweigh
    narrow low ones. Read-only: it is shared by every call of the process."""
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(0.0, hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    left, centre, right = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz - left) / (centre - left)
    falling = (right - bin_hz) / (right - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    area_norm = 2.0 / (right - left)
    bank = (triangles * area_norm).astype(np.float32)
    bank.setflags(write=False)
    return bank


@functools.cache
def _sparse_filterbank() -> tuple[npt.NDArray[np.intp], Float64Array, npt.NDArray[np.intp]]:
    """The filterbank's non-zero weights in band order: (FFT bin, weight, first entry of each band).

    Every FFT bin lies under at most two triangles, so the 80 x 201 bank holds ~400 non-zeros.
    Summing those directly avoids a BLAS matrix product, whose worker threads (OpenBLAS spins
    them between calls) would compete with the inference and with the other models for the same
    cores: on 2 busy cores that doubled the time of a verdict.
    """
    bank = mel_filterbank().astype(np.float64)
    bands, bins = np.nonzero(bank)
    starts = np.searchsorted(bands, np.arange(bank.shape[0]))
    if len(np.unique(bands)) != bank.shape[0]:  # reduceat needs every band to have a weight
        raise AssertionError("a mel band covers no FFT bin")
    return bins, bank[bands, bins], starts


@functools.cache
def _hann() -> Float64Array:
    """The periodic Hann window (the STFT convention: it tiles exactly at any hop)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    window.setflags(write=False)
    return window


def pcm16_to_float(pcm: bytes) -> Float32Array:
    """Little-endian PCM16 to float32 in [-1, 1); a trailing odd byte is ignored."""
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / np.float32(32768.0)


def model_window(samples: Float32Array) -> Float32Array:
    """The model's 128,000-sample input: the last 8 s, zero-padded on the left, then normalised
    over the whole window."""
    recent = samples[-N_SAMPLES:]
    window = np.zeros(N_SAMPLES, dtype=np.float64)
    window[N_SAMPLES - recent.size :] = recent
    window -= window.mean()
    window /= np.sqrt(window.var() + _NORM_EPS)
    return window.astype(np.float32)


def log_mel(window: Float32Array) -> Float32Array:
    """``(80, 800)`` log-mel features of a 128,000-sample window (see the module docstring)."""
    if window.shape != (N_SAMPLES,):
        raise ValueError(f"expected {N_SAMPLES} samples, got shape {window.shape}")
    padded = np.pad(window.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
    spectrum = np.fft.rfft(frames * _hann(), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    bins, weights, starts = _sparse_filterbank()
    mel = np.add.reduceat(power[:, bins] * weights, starts, axis=1).T
    logs = np.log10(np.maximum(mel, _LOG_FLOOR))
    logs = np.maximum(logs, logs.max() - _DYNAMIC_RANGE)
    scaled: Float32Array = ((logs + 4.0) / 4.0).astype(np.float32)
    return scaled


def features(pcm: bytes) -> Float32Array:
    """The model input ``input_features`` (``[1, 80, 800]`` float32) for PCM16 16 kHz audio."""
    return log_mel(model_window(pcm16_to_float(pcm)))[None, :, :]
