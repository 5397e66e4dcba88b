"""G.711 μ-law, the phone network's audio: 8 kHz, one byte a sample.

Encoding is table-driven both ways (a 64 K-entry table for PCM16 → μ-law), so a 20 ms frame
costs one numpy gather: the phone transports do it for every frame of every call.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MULAW_RATE = 8_000
MULAW_FRAME_BYTES = MULAW_RATE * 20 // 1000
"""20 ms of μ-law: 160 bytes."""
MULAW_SILENCE = 0xFF

_BIAS = 0x84
_CLIP = 32_635


def _decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((code & 0x0F) << 3) + _BIAS) << ((code >> 4) & 7)
    return np.where(code & 0x80, _BIAS - magnitude, magnitude - _BIAS).astype(np.int16)


def _encode_table() -> npt.NDArray[np.uint8]:
    sample = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(sample < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(sample), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7  # the segment: 0..7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code: npt.NDArray[np.uint8] = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return code


_DECODE = _decode_table()
_ENCODE = _encode_table()


def mulaw_decode(data: bytes) -> bytes:
    """μ-law bytes → PCM16 little-endian, same rate."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def mulaw_encode(pcm: bytes) -> bytes:
    """PCM16 little-endian → μ-law bytes, same rate."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    return _ENCODE[samples + 32768].tobytes()
