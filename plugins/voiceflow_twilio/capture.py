"""Caller audio from Twilio's ``media`` messages as the runtime wants it: 20 ms frames of
PCM16 at 16 kHz, each stamped with when it was captured, on the call's clock.

Twilio stamps each message with the milliseconds since its stream started. Arrival times jitter
with the network, Twilio's stamps do not, so a frame's time is Twilio's stamp moved onto our
clock by the smallest delay seen so far: the message that came quickest fixes the offset, a late
message keeps its true (earlier) time instead of the time it happened to arrive, and no frame is
stamped as captured after it arrived. Start times never go backwards; when a quicker message
shows that earlier frames were stamped late, the next few overlap them a little (by at most that
lateness, less 20 ms a frame) until the stamps are back on Twilio's timeline, rather than every
later frame inheriting the error. Messages without a stamp count as captured just now.
"""

from __future__ import annotations

import math

from voiceflow.frames import FRAME_BYTES, SAMPLE_RATE, AudioFrame
from voiceflow.g711 import MULAW_RATE, mulaw_decode
from voiceflow_twilio.rate import DELAY_SECONDS, Upsampler


class CaptureFramer:
    def __init__(self) -> None:
        self._upsample = Upsampler()
        self._pending = bytearray()
        self._offset = math.inf
        """Our clock minus Twilio's, at the quickest message so far."""
        self._last = -math.inf
        """The previous frame's start."""

    def push(self, codes: bytes, timestamp_ms: int | None, now: float) -> list[AudioFrame]:
        """One ``media`` payload received at ``now``; returns the whole frames it completes."""
        if timestamp_ms is None:
            end = now
        else:
            sent_end = timestamp_ms / 1000 + len(codes) / MULAW_RATE
            self._offset = min(self._offset, now - sent_end)
            end = self._offset + sent_end
        self._pending += self._upsample(mulaw_decode(codes))
        end -= DELAY_SECONDS  # the filter has let out audio up to here
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        frames = []
        for start in range(0, whole, FRAME_BYTES):
            t = self._last = max(self._last, end - (len(self._pending) - start) / (2 * SAMPLE_RATE))
            frames.append(AudioFrame(bytes(self._pending[start : start + FRAME_BYTES]), t))
        del self._pending[:whole]
        return frames
