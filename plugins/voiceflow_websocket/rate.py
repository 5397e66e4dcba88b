"""The sample rates a WebSocket client may use.

Audio is converted to and from the internal 16 kHz by :class:`voiceflow.low_delay_resampler.
LowDelayResampler`, whose delay is fixed at about a millisecond: every 20 ms in comes out at
once. (soxr's streaming resampler works in blocks: on 20 ms chunks it answers only every 60 ms at
"LQ" and after 100 ms at "HQ", and it holds the end of each reply until the next one pushes it
out; its "QQ" answers at once but does not filter, so downsampling folds sibilants back into the
band as hiss.)
"""

from __future__ import annotations

RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
"""The rates a client may use: each has a small enough ratio to 16 kHz for the resampler's
filter bank (at most a few hundred phases)."""
