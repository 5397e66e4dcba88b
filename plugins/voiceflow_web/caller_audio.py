"""The caller's microphone, from the WebRTC track to the runtime's frames.

The browser's Opus arrives decoded by aiortc as 48 kHz interleaved stereo in 20 ms packets. It
is mixed down, resampled to 16 kHz by a streaming filter at a low-delay quality (the default
quality holds back up to 37 ms in bursts), cut into 20 ms frames and stamped on the call's clock:
a packet decoded now holds the last stretch of audio, so its frames end now (never before the
frame that came first).

Each packet is older than that: aiortc's audio jitter buffer hands a packet on only once four
more have arrived (``JitterBuffer(prefetch=4)`` in its receiver), so it is 80 ms old when
decoded, plus the network's transit. Frames are therefore stamped :data:`RECEIVE_DELAY` earlier,
at about when the caller said them, so mouth-to-ear counts from the caller's mouth. (The
barge-in policy judges "still talking" against the newest audio heard, not the clock, so late
delivery is not taken for silence.)
"""

from __future__ import annotations

import numpy as np

from voiceflow.audio import Resampler
from voiceflow.frames import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame

RECEIVE_DELAY = 4 * FRAME_SECONDS
"""How old a caller packet is when aiortc decodes it (its jitter buffer's prefetch)."""


class CallerAudio:
    """Converts one track's packets; keeps the resampler's state and the partial frame."""

    def __init__(self) -> None:
        self._resampler: Resampler | None = None
        self._pending = bytearray()
        self._cursor = -float("inf")

    def frames(self, interleaved: bytes, rate: int, channels: int, now: float) -> list[AudioFrame]:
        """The whole frames the packet completes, stamped with when they were said."""
        if self._resampler is None or self._resampler.in_rate != rate:
            self._resampler = Resampler(rate, SAMPLE_RATE, quality="LQ")
        samples = np.frombuffer(interleaved, dtype="<i2")
        if channels > 1:
            samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
        self._pending += self._resampler.process(samples.astype("<i2").tobytes())
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        chunks = [bytes(self._pending[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]
        del self._pending[:whole]
        out = []
        for i, pcm in enumerate(chunks):
            t = max(self._cursor, now - RECEIVE_DELAY - (len(chunks) - i) * FRAME_SECONDS)
            self._cursor = t + FRAME_SECONDS
            out.append(AudioFrame(pcm, t))
        return out
