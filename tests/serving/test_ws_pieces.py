"""The WebSocket transport's pieces on their own: the resampler and the message parser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voiceflow.low_delay_resampler import LowDelayResampler
from voiceflow.serving.api import ClientError, CloseCode
from voiceflow_websocket.protocol import AudioFormat, HangUp, Mark, Start, parse
from voiceflow_websocket.rate import RATES

OTHER_RATES = [rate for rate in RATES if rate != 16_000]


def tone(freq: float, rate: int, seconds: float = 1.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def level(pcm: bytes, skip: int = 200) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)[skip:]
    return float(np.sqrt(np.mean(samples**2)))


def through(resample: LowDelayResampler, pcm: bytes, rate: int) -> list[bytes]:
    size = 2 * (rate // 50)
    return [resample.process(pcm[i : i + size]) for i in range(0, len(pcm), size)]


@pytest.mark.parametrize(("a", "b"), [(r, 16_000) for r in OTHER_RATES] + [(16_000, r) for r in OTHER_RATES])
def test_every_20_ms_in_comes_out_at_once_at_the_same_level(a: int, b: int) -> None:
    out = through(LowDelayResampler(a, b), tone(1000, a), a)
    expected = b / 50
    assert all(abs(len(chunk) / 2 - expected) <= 1 for chunk in out[1:-1])  # no blocks held back
    total = sum(len(chunk) for chunk in out) // 2
    assert b - 50 <= total <= b  # all but the kernel's half-width (a millisecond or so)
    assert level(b"".join(out)) == pytest.approx(level(tone(1000, a)), rel=0.01)


@pytest.mark.parametrize("rate", [8_000, 11_025, 12_000])
def test_downsampling_removes_what_would_alias(rate: int) -> None:
    above = tone(0.5 * rate * 1.2, 16_000)  # above the new Nyquist: it would fold back
    assert level(LowDelayResampler(16_000, rate).process(above)) < level(above) * 1e-3  # > 60 dB down


def test_upsampling_leaves_no_images() -> None:
    out = np.frombuffer(LowDelayResampler(8_000, 16_000).process(tone(3000, 8_000)), dtype="<i2").astype(np.float64)[400:]
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 16_000)
    image = spectrum[np.abs(freqs - 5000) < 50].max()
    assert image < spectrum.max() * 1e-3


def test_a_long_call_does_not_drift() -> None:
    resample = LowDelayResampler(44_100, 16_000)
    chunk = bytes(2 * 882)
    produced = sum(len(resample.process(chunk)) // 2 for _ in range(50 * 600))  # ten minutes
    assert abs(produced - 16_000 * 600) <= 50


def test_messages_parse_to_their_types() -> None:
    start = parse(json.dumps({"type": "start", "format": {"sample_rate": 8000}}))
    assert start == Start(AudioFormat(8000), acknowledges_marks=True, metadata={})
    assert parse('{"type": "start", "format": {"sample_rate": 16000}, "pauses": true}').pauses
    assert parse('{"type": "mark", "id": 3}') == Mark(3)
    assert parse('{"type": "hangup", "reason": "done"}') == HangUp("done")


@pytest.mark.parametrize("text", [
    '{"type": "start", "format": {"sample_rate": 16000.0}}',
    '{"type": "start", "format": {"sample_rate": true}}',
    '{"type": "start", "format": {"sample_rate": 16001}}',
    '{"type": "start", "format": {"sample_rate": 16000}, "acknowledges_marks": "yes"}',
    '{"type": "start", "format": {"sample_rate": 16000}, "pauses": 1}',
    '{"type": "start", "format": {"sample_rate": 16000}, "pauses": true, "acknowledges_marks": false}',
    json.dumps({"type": "start", "format": {"sample_rate": 16000}, "metadata": {"x": "y" * 5000}}),
    '{"type": "mark", "id": true}',
    '[1, 2]',
    '"start"',
    "[" * 100_000,
])
def test_malformed_messages_are_protocol_errors(text: str) -> None:
    with pytest.raises(ClientError) as failure:
        parse(text)
    assert failure.value.close in (CloseCode.INVALID, CloseCode.UNSUPPORTED) and str(failure.value)
