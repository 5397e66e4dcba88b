"""The numpy Whisper log-mel features, checked against two independent computations on real speech.

One is written here from the textbook definitions, as plainly as possible: a direct DFT (no FFT),
reflect padding by index arithmetic, each mel triangle and its Slaney scale evaluated scalar by
scalar. The other is faster-whisper's own numpy extractor (installed with the offline extra),
given the same 8 s window. Agreement with both means the model sees what it was trained on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from audio_fixtures import goforward, noise, pocketsphinx_pcm
from voiceflow_smart_turn.features import (
    N_FFT,
    N_FRAMES,
    N_MELS,
    N_SAMPLES,
    features,
    log_mel,
    mel_filterbank,
    model_window,
    pcm16_to_float,
)

SR = 16_000
HOP = 160


def slaney_mel(hz: float) -> float:
    """Slaney's Auditory Toolbox scale: 3 mels per 200 Hz up to 1 kHz, then 27 per factor 6.4."""
    if hz < 1000.0:
        return 3.0 * hz / 200.0
    return 15.0 + 27.0 * math.log(hz / 1000.0) / math.log(6.4)


def slaney_hz(mel: float) -> float:
    if mel < 15.0:
        return 200.0 * mel / 3.0
    return 1000.0 * math.pow(6.4, (mel - 15.0) / 27.0)


def reference_filterbank() -> np.ndarray:
    """80 triangles evenly spaced in Slaney mels over 0-8 kHz, each of area 1 (height 2/width)."""
    top = slaney_mel(SR / 2)
    edges = [slaney_hz(top * i / (N_MELS + 1)) for i in range(N_MELS + 2)]
    bank = np.zeros((N_MELS, N_FFT // 2 + 1))
    for m in range(N_MELS):
        low, centre, high = edges[m], edges[m + 1], edges[m + 2]
        for k in range(N_FFT // 2 + 1):
            f = k * SR / N_FFT
            if low < f <= centre:
                weight = (f - low) / (centre - low)
            elif centre < f < high:
                weight = (high - f) / (high - centre)
            else:
                weight = 0.0
            bank[m, k] = weight * 2.0 / (high - low)
    return bank


def reference_log_mel(window: np.ndarray) -> np.ndarray:
    """Whisper's log-mel by the definition: per frame, reflect-padded samples, periodic Hann,
    direct DFT power, mel sums; then log10, clamp 8 below the max, (x + 4) / 4."""
    x = window.astype(np.float64)
    n = np.arange(N_FFT)
    hann = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / N_FFT) for i in range(N_FFT)])
    k = np.arange(N_FFT // 2 + 1)[:, None]
    cos_table, sin_table = np.cos(2 * np.pi * k * n / N_FFT), np.sin(2 * np.pi * k * n / N_FFT)
    last = len(x) - 1
    power = np.zeros((N_FFT // 2 + 1, N_FRAMES))
    for t in range(N_FRAMES):  # the centred STFT's 801st frame is left out, as Whisper does
        index = t * HOP + n - N_FFT // 2
        index = np.where(index < 0, -index, index)
        index = np.where(index > last, 2 * last - index, index)
        frame = x[index] * hann
        power[:, t] = (cos_table @ frame) ** 2 + (sin_table @ frame) ** 2
    logs = np.log10(np.maximum(reference_filterbank() @ power, 1e-10))
    scaled: np.ndarray = (np.maximum(logs, logs.max() - 8.0) + 4.0) / 4.0
    return scaled


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    return model_window(pcm16_to_float(goforward()))


def test_filterbank_matches_the_scalar_definition() -> None:
    assert mel_filterbank().shape == (N_MELS, N_FFT // 2 + 1)
    np.testing.assert_allclose(mel_filterbank(), reference_filterbank(), rtol=1e-5, atol=1e-9)


def test_log_mel_of_real_speech_matches_a_direct_dft(window: np.ndarray) -> None:
    mine = log_mel(window)
    assert mine.shape == (N_MELS, N_FRAMES) and mine.dtype == np.float32
    np.testing.assert_allclose(mine, reference_log_mel(window), atol=1e-5)


def test_log_mel_matches_faster_whispers_extractor(window: np.ndarray) -> None:
    extractor = pytest.importorskip("faster_whisper.feature_extractor")
    theirs = extractor.FeatureExtractor(feature_size=N_MELS, chunk_length=8)(window, padding=0)
    np.testing.assert_allclose(log_mel(window), theirs, atol=1e-5)


def test_window_is_the_last_8_s_left_padded_then_normalised() -> None:
    speech = pcm16_to_float(goforward())
    window = model_window(speech)
    assert window.shape == (N_SAMPLES,)
    # Normalised over the whole window, padding included (the upstream order: pad, then normalise).
    assert abs(float(window.mean())) < 1e-5 and float(window.std()) == pytest.approx(1.0, abs=1e-3)
    padded = np.zeros(N_SAMPLES)
    padded[-speech.size :] = speech
    expected = (padded - padded.mean()) / np.sqrt(padded.var() + 1e-7)
    np.testing.assert_allclose(window, expected, atol=1e-5)
    # The speech sits at the end: the padding before it is one constant value.
    assert np.ptp(window[: N_SAMPLES - speech.size]) == 0.0


def test_only_the_last_8_s_count() -> None:
    long = noise(5.0, dbfs=-20.0) + pocketsphinx_pcm(
        "librivox/sense_and_sensibility_01_austen_64kb-0870.wav"
    )  # 12 s: the noise and the first 4 s of the sentence fall outside the window
    last_8_s = long[-2 * N_SAMPLES :]
    np.testing.assert_array_equal(features(long), features(last_8_s))


def test_model_input_shape_and_an_odd_trailing_byte() -> None:
    pcm = goforward()
    out = features(pcm + b"\x01")
    assert out.shape == (1, N_MELS, N_FRAMES) and out.dtype == np.float32
    np.testing.assert_array_equal(out, features(pcm))
    assert np.isfinite(features(b"\0\0" * 160)).all()  # a moment of digital silence stays finite
