"""Keypad tones (DTMF) the agent plays itself, for lines that carry keys only as sound.

An IVR menu wants a key pressed, and a phone line may have no way to send one out of band:
Twilio Media Streams has no outbound DTMF message, and replacing the call's TwiML with
``<Play digits>`` ends the ``<Connect><Stream>`` the agent lives in. So the digit is sent the way
a handset sends it: two sine waves at once, one of the low group (the key's row) and one of the
high group (its column), played through the normal playout path (ITU-T Q.23 frequencies).

The durations and levels are chosen to be accepted by the detectors real IVRs run, with margin:

* **tone 100 ms, gap 100 ms.** Q.24 lets administrations set the reception limits; the common
  ones (Telcordia / ANSI T1.401, cited in Q.24's tables) require a tone of at least 40–50 ms and
  a pause of at least 40–45 ms, a cycle of at least 100 ms. Twice that is what handsets and
  gateways send by default (Cisco and H3C gateways: 100–120 ms on, 100–140 ms off).
* **high group 2 dB above the low group** ("positive twist", the usual pre-emphasis: lines lose
  more of the high frequencies; receivers accept 4 dB forward and 8 dB reverse twist).
* **-10 dBFS and -8 dBFS** per tone: the sum peaks near -3 dBFS, so neither 16-bit PCM nor
  μ-law clips it, and it sits well above any receiver's sensitivity floor (about -25 dBm0).

For a μ-law line the tones are made at 8 kHz and encoded once, straight to the wire (no 16 kHz
copy resampled down and encoded again); the 16 kHz PCM beside them is for recordings and the
playback accounting, as for a voice that speaks μ-law itself.
"""

from __future__ import annotations

import numpy as np

from voiceflow.g711 import MULAW_RATE, mulaw_encode

KEYS = "123A456B789C*0#D"
"""The keypad, row by row: a key's row picks its low tone, its column its high tone."""
LOW = (697.0, 770.0, 852.0, 941.0)
HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
TONE_SECONDS = 0.1
GAP_SECONDS = 0.1
LOW_DBFS = -10.0
HIGH_DBFS = -8.0


class BadKeys(ValueError):
    """Not keypad keys (the message says which)."""


def check_keys(keys: str) -> str:
    """``keys`` as the keypad spells them (``a``–``d`` upper-cased); a clear error otherwise."""
    upper = keys.upper()
    bad = sorted({key for key in upper if key not in KEYS})
    if not upper or bad:
        raise BadKeys(f"keys must be 0-9, *, #, A-D (got {keys!r})")
    return upper


def frequencies(key: str) -> tuple[float, float]:
    """The (low, high) pair of one key."""
    index = KEYS.index(check_keys(key))
    return LOW[index // 4], HIGH[index % 4]


def tones(keys: str, sample_rate: int) -> np.ndarray:
    """PCM16 samples of ``keys`` pressed one after another: tone, gap, tone, gap…

    Each tone starts and ends at a zero crossing of a 2 ms raised-cosine ramp, so it clicks no
    more than a handset does (a hard edge splatters energy across the band a detector watches).
    """
    tone = round(TONE_SECONDS * sample_rate)
    gap = round(GAP_SECONDS * sample_rate)
    t = np.arange(tone) / sample_rate
    ramp = min(tone // 2, round(0.002 * sample_rate))
    envelope = np.ones(tone)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        envelope[:ramp], envelope[-ramp:] = edge, edge[::-1]
    low_amp, high_amp = 10 ** (LOW_DBFS / 20), 10 ** (HIGH_DBFS / 20)
    pieces: list[np.ndarray] = []
    for key in check_keys(keys):
        low, high = frequencies(key)
        wave = low_amp * np.sin(2 * np.pi * low * t) + high_amp * np.sin(2 * np.pi * high * t)
        pieces += [wave * envelope, np.zeros(gap)]
    samples = np.concatenate(pieces)
    return np.round(samples * 32767).astype("<i2")


def tones_mulaw(keys: str) -> bytes:
    """``keys`` as μ-law at 8 kHz, ready for a phone line's wire."""
    return mulaw_encode(tones(keys, MULAW_RATE).tobytes())


def seconds(keys: str) -> float:
    """How long pressing ``keys`` takes (tones and gaps)."""
    return len(check_keys(keys)) * (TONE_SECONDS + GAP_SECONDS)
