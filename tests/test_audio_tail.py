"""The caller's recent audio for end-of-turn models: a fixed ring that gives exactly what keeping
everything would give, for any frames and any moment asked about."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from voiceflow.frames import SAMPLE_RATE, AudioFrame
from voiceflow.runtime.audio_tail import AudioTail


def reference(pcm: bytes, end: float, seconds: float, t: float) -> bytes:
    """Everything kept: the last ``seconds`` before ``t``."""
    cut = len(pcm) - 2 * max(0, round((end - t) * SAMPLE_RATE))
    cut = max(0, min(len(pcm), cut))
    return pcm[max(0, cut - int(seconds * SAMPLE_RATE) * 2) : cut]


@settings(max_examples=200, deadline=None)
@given(
    seconds=st.sampled_from([0.05, 0.3, 1.0]),
    sizes=st.lists(st.sampled_from([2, 320, 640, 4000, 80_000]), min_size=1, max_size=60),
    back=st.floats(min_value=0.0, max_value=1.5),
)
def test_the_ring_gives_what_keeping_everything_gives(seconds: float, sizes: list[int], back: float) -> None:
    tail = AudioTail(seconds)
    ring = len(tail._ring)
    pcm = b""
    t = 0.0
    for i, size in enumerate(sizes):
        chunk = bytes((i * 7 + j) % 251 for j in range(size))
        frame = AudioFrame(chunk, t)
        tail.push(frame)
        pcm += chunk
        t += frame.duration
    asked = t - back
    assert tail.until(asked) == reference(pcm, t, seconds, asked)
    assert len(tail._ring) == ring  # allocated once


def test_a_young_call_gives_what_it_has() -> None:
    tail = AudioTail(8.0)
    tail.push(AudioFrame(b"\x01\x00" * 320, 0.0))
    assert tail.until(0.02) == b"\x01\x00" * 320
    assert AudioTail(8.0).until(1.0) == b""


def test_a_cleared_tail_holds_nothing_and_takes_nothing() -> None:
    tail = AudioTail(8.0)
    tail.push(AudioFrame(b"\x01\x00" * 320, 0.0))
    tail.clear()
    assert len(tail._ring) == 0
    tail.push(AudioFrame(b"\x01\x00" * 320, 0.02))
    assert tail.until(0.04) == b""
