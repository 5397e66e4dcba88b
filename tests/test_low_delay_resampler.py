"""The low-delay resampler the reply path uses for voices not at 16 kHz: every chunk's audio
comes back at once (no block buffering), streaming gives what one pass gives, and it filters
properly (tones pass clean, tones above the output's Nyquist frequency are rejected)."""

from __future__ import annotations

import numpy as np
import pytest

from voiceflow.frames import FRAME_BYTES, TTSAudio
from voiceflow.low_delay_resampler import LowDelayResampler
from voiceflow.runtime.framer import Framer

RATES = [8_000, 22_050, 24_000, 32_000, 44_100, 48_000]


def tone(rate: int, hz: float, seconds: float = 1.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2")


def resample_in_chunks(samples: np.ndarray, rate: int, sizes: list[int]) -> tuple[np.ndarray, list[int]]:
    resampler = LowDelayResampler(rate)
    outs, lengths, pos, i = [], [], 0, 0
    while pos < len(samples):
        size = sizes[i % len(sizes)]
        out = resampler.process(samples[pos : pos + size].tobytes())
        outs.append(out)
        lengths.append(len(out) // 2)
        pos, i = pos + size, i + 1
    outs.append(resampler.process(b"", last=True))
    return np.frombuffer(b"".join(outs), dtype="<i2"), lengths


@pytest.mark.parametrize("rate", RATES)
def test_a_20_ms_chunk_gives_20_ms_at_once(rate: int) -> None:
    samples = tone(rate, 440.0, seconds=0.2)
    chunk = rate // 50
    _, lengths = resample_in_chunks(samples, rate, [chunk])
    # The first chunk already gives a whole 16 kHz frame (soxr HQ gives none at 24 kHz), and
    # every chunk gives its share: no audio is held back between chunks.
    assert lengths[0] == FRAME_BYTES // 2
    assert all(abs(n - 320) <= 1 for n in lengths)
    assert sum(lengths) == -(-len(samples) * 16_000 // rate)


@pytest.mark.parametrize("rate", RATES)
def test_streaming_gives_what_one_pass_gives(rate: int) -> None:
    samples = (np.random.default_rng(rate).normal(0, 3000, rate)).astype("<i2")
    whole, _ = resample_in_chunks(samples, rate, [len(samples)])
    chunked, _ = resample_in_chunks(samples, rate, [1, 7, 160, 333, 1000, 2])
    assert np.array_equal(whole, chunked)


def snr_db(out: np.ndarray, hz: float) -> float:
    """How far the tone at ``hz`` stands above everything else in ``out`` (16 kHz)."""
    y = out[400:-400].astype(np.float64)
    t = np.arange(len(y)) / 16_000
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    fit = basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    return float(10 * np.log10(np.sum(fit**2) / np.sum((y - fit) ** 2)))


@pytest.mark.parametrize(("rate", "hz"), [(rate, hz) for rate in RATES for hz in (300.0, 1000.0, 3000.0, 6000.0)
                                          if hz < 0.45 * rate])  # a tone the input can carry
def test_tones_in_the_passband_come_through_clean(rate: int, hz: float) -> None:
    out, _ = resample_in_chunks(tone(rate, hz), rate, [rate // 50])
    assert snr_db(out, hz) >= 60.0
    level = np.std(out[400:-400]) / np.std(tone(rate, hz).astype(np.float64))
    assert level == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("rate", [22_050, 24_000, 32_000, 44_100, 48_000])
@pytest.mark.parametrize("hz", [9_000.0, 10_500.0])
def test_tones_above_the_output_nyquist_do_not_alias(rate: int, hz: float) -> None:
    source = tone(rate, hz)
    out, _ = resample_in_chunks(source, rate, [rate // 50])
    left = np.std(out[400:-400].astype(np.float64)) / np.std(source.astype(np.float64))
    assert 20 * np.log10(left + 1e-12) <= -60.0


@pytest.mark.parametrize("rate", RATES)
def test_the_delay_is_about_a_millisecond(rate: int) -> None:
    click = np.zeros(rate // 10, dtype="<i2")
    click[rate // 20] = 20_000
    out, _ = resample_in_chunks(click, rate, [rate // 50])
    delay = int(np.argmax(np.abs(out))) / 16_000 - (rate // 20) / rate
    assert 0.0 <= delay <= 0.0015


def test_rates_without_a_small_ratio_fall_back_to_soxr() -> None:
    samples = tone(22_051, 1000.0)
    out, _ = resample_in_chunks(samples, 22_051, [441])
    assert abs(len(out) - 16_000) <= 40
    assert snr_db(out, 1000.0) >= 50.0


def test_the_same_rate_passes_through() -> None:
    pcm = tone(16_000, 500.0, seconds=0.05).tobytes()
    assert LowDelayResampler(16_000).process(pcm) == pcm


def test_a_24_khz_voice_fills_the_first_frame_from_its_first_chunk() -> None:
    """The reply's first frame is ready when the voice's first 20 ms are in, not 20 ms later."""
    framer = Framer()
    frames = framer.push(TTSAudio(tone(24_000, 440.0, seconds=0.02).tobytes(), 24_000))
    assert len(frames) == 1 and len(frames[0][0]) == FRAME_BYTES
