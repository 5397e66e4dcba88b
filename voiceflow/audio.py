"""PCM conversions at the edges: int16 ↔ float32, resampling, framing, WAV files.

Resampling uses soxr (libsoxr's VHQ/HQ resamplers, streaming, no heavy dependencies): a TTS voice
at 22,050 Hz or a phone line at 8 kHz is converted once at the edge, never inside the graph.

Caller recordings come from anywhere (phones, editors, other tools, renamed MP3s), so they are
read by a small RIFF/WAVE parser of our own rather than the ``wave`` module, which accepts only
integer PCM, refuses WAVE_FORMAT_EXTENSIBLE and throws bare exceptions on broken headers. Every
refusal is an :class:`AudioFileError` whose text is one line naming the file and the problem.
"""

from __future__ import annotations

import os
import stat
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import soxr

from voiceflow.frames import FRAME_BYTES, SAMPLE_RATE

Float32 = npt.NDArray[np.float32]
Int16 = npt.NDArray[np.int16]


def pcm_to_float(pcm: bytes) -> Float32:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: Float32) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0) * 32767.0
    return clipped.astype("<i2").tobytes()


class Resampler:
    """Streaming PCM16 resampler that keeps filter state between chunks of one stream."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE, *, quality: str = "HQ") -> None:
        """``quality`` is soxr's: ``"HQ"`` for clips and TTS; ``"LQ"`` on a live line, where HQ
        holds back 7-37 ms of audio in bursts and LQ at most 20 ms (both filter properly)."""
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
            if in_rate != out_rate
            else None
        )

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return bytes(self._stream.resample_chunk(samples, last=last).tobytes())


def resample(pcm: bytes, in_rate: int, out_rate: int = SAMPLE_RATE) -> bytes:
    """Resample a whole clip in one go."""
    return Resampler(in_rate, out_rate).process(pcm, last=True)


def split_frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """Cut PCM into frames; the last one is zero-padded to full length."""
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes]
        yield chunk if len(chunk) == frame_bytes else chunk + b"\0" * (frame_bytes - len(chunk))


def write_wav(path: str | Path, pcm: bytes, rate: int = SAMPLE_RATE, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


# --- reading caller recordings ----------------------------------------------------------------

MIN_RATE, MAX_RATE = 4_000, 384_000
"""Sample rates a recording may have: below this no speech survives, above it the header lies."""
MAX_CHANNELS = 32
MAX_SECONDS = 6 * 3600
"""Longer recordings are refused from the header alone, before any of the audio is read."""

_SUPPORTED_BITS = {"PCM": (8, 16, 24, 32), "IEEE float": (32, 64), "mu-law": (8,), "A-law": (8,)}
_CODECS = {0x0001: "PCM", 0x0003: "IEEE float", 0x0006: "A-law", 0x0007: "mu-law"}
_OTHER_CODECS = {
    0x0002: "Microsoft ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0040: "G.721 ADPCM",
    0x0050: "MPEG audio", 0x0055: "MP3", 0x0064: "G.726 ADPCM", 0x00FF: "AAC", 0x0161: "WMA",
    0x1610: "AAC", 0x2000: "AC-3", 0xF1AC: "FLAC",
}
_EXTENSIBLE = 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_SOX_HINT = "convert it, e.g. `sox in.wav -b 16 -e signed-integer out.wav`"
_BLOCK_BYTES = 1 << 20


class AudioFileError(ValueError):
    """A recording voiceflow cannot use. Its text is one line: the file, then what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{display_path(path)}: {problem}")


def display_path(path: str | Path) -> str:
    """A path as one printable line: a name holding a newline or undecodable bytes is quoted."""
    text = os.fspath(path)
    return text if text.isprintable() else ascii(text)


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a recording's header promises, checked against the file's real size."""

    path: Path
    codec: str
    bits: int
    channels: int
    rate: int
    frames: int
    data_offset: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def check_recording(path: str | Path) -> WavInfo:
    """Check that ``path`` is a WAV voiceflow can play, from its header and size alone.

    Used wherever a recording is named (agent-file validation, ``--input``), so a bad recording is
    refused before any model loads rather than halfway into a call. Raises :class:`AudioFileError`.
    """
    with _open_recording(path) as file:
        try:
            return _parse_header(file, Path(path))
        except OSError as exc:
            raise AudioFileError(path, f"cannot be read ({exc.strerror})") from None


def read_wav(path: str | Path, rate: int = SAMPLE_RATE) -> bytes:
    """A WAV file as PCM16 mono at ``rate`` (mixing channels down, resampling if needed).

    Decoded a block at a time through a streaming resampler, so a long recording never sits in
    memory in more than its 16-bit mono form. Raises :class:`AudioFileError`.
    """
    with _open_recording(path) as file:
        try:
            info = _parse_header(file, Path(path))
            resampler = Resampler(info.rate, rate)
            out = bytearray()
            file.seek(info.data_offset)
            remaining = info.frames
            block = max(1, _BLOCK_BYTES // info.frame_bytes)
            while remaining:
                count = min(block, remaining)
                raw = _read_exact(file, count * info.frame_bytes, info.path)
                out += resampler.process(_to_mono16(raw, info))
                remaining -= count
        except OSError as exc:
            raise AudioFileError(path, f"cannot be read ({exc.strerror})") from None
        out += resampler.process(b"", last=True)
        return bytes(out)


def _read_exact(file: BinaryIO, count: int, path: Path) -> bytes:
    data = file.read(count)
    if len(data) != count:
        raise AudioFileError(path, "got shorter while it was being read")
    return data


def _open_recording(path: str | Path) -> BinaryIO:
    """Open without ever blocking: a FIFO is refused from ``stat`` before it is opened, and the
    open itself is non-blocking in case the path is swapped for one in between."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        broken = os.path.islink(path)
        raise AudioFileError(path, "is a broken symbolic link" if broken else "no such recording") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot be read ({exc.strerror})") from None
    _check_regular(path, info.st_mode)
    if info.st_size == 0:
        raise AudioFileError(path, "is empty")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise AudioFileError(path, f"cannot be opened ({exc.strerror})") from None
    try:
        _check_regular(path, os.fstat(fd).st_mode)
    except AudioFileError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check_regular(path: str | Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise AudioFileError(path, "is a directory, not a recording")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "special")
        raise AudioFileError(path, f"is not a regular file (it is {kind}); give a WAV file")


def _parse_header(file: BinaryIO, path: Path) -> WavInfo:
    size = os.fstat(file.fileno()).st_size
    head = file.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        if head[:4] == b"RIFF" and len(head) < 12:
            raise AudioFileError(path, f"is truncated inside its RIFF header ({size} bytes)")
        raise AudioFileError(path, _not_a_wav(head + file.read(500)))
    fmt, data = _find_chunks(file, size, path)
    info = _parse_fmt(fmt, path)
    offset, declared = data
    held = size - offset
    if declared > held:
        raise AudioFileError(path, f"is truncated: its data chunk declares {declared} bytes but the file "
                             f"holds {held}; repair it with `sox --ignore-length in.wav out.wav`")
    frame_bytes = info.frame_bytes
    if declared % frame_bytes:
        raise AudioFileError(path, f"its data chunk holds {declared} bytes, not a whole number of "
                             f"{frame_bytes}-byte sample frames ({info.channels} channel(s) of {info.bits} bits)")
    frames = declared // frame_bytes
    if frames == 0:
        raise AudioFileError(path, "holds no audio (its data chunk is empty)")
    if frames / info.rate > MAX_SECONDS:
        raise AudioFileError(path, f"is {frames / info.rate / 3600:.1f} hours long; recordings up to "
                             f"{MAX_SECONDS // 3600} hours are accepted")
    return WavInfo(path, info.codec, info.bits, info.channels, info.rate, frames, offset)


def _find_chunks(file: BinaryIO, size: int, path: Path) -> tuple[bytes, tuple[int, int]]:
    """Walk the chunk list to the 'fmt ' and 'data' chunks, in either order.

    A chunk of odd size is followed by a pad byte; some writers forget it, so an unpadded next
    chunk is accepted when the padded position holds no chunk id.
    """
    fmt: bytes | None = None
    data: tuple[int, int] | None = None
    offset, odd = 12, False
    while offset + 8 <= size and (fmt is None or data is None):
        file.seek(offset)
        chunk_id, chunk_size = struct.unpack("<4sI", _read_exact(file, 8, path))
        if not _is_chunk_id(chunk_id) and odd:
            file.seek(offset - 1)
            unpadded_id, unpadded_size = struct.unpack("<4sI", _read_exact(file, 8, path))
            if _is_chunk_id(unpadded_id):
                offset, chunk_id, chunk_size = offset - 1, unpadded_id, unpadded_size
        if not _is_chunk_id(chunk_id):
            raise AudioFileError(path, f"is corrupt: no chunk header at byte {offset} (found {chunk_id!r})")
        body = offset + 8
        if chunk_id == b"data":
            data = (body, chunk_size)
            if fmt is not None or body + chunk_size > size:
                break
        elif body + chunk_size > size:
            raise AudioFileError(path, f"is truncated: its {chunk_id.decode()!r} chunk at byte {offset} "
                                 f"declares {chunk_size} bytes but the file ends at byte {size}")
        elif chunk_id == b"fmt ":
            fmt = file.read(min(chunk_size, 64))
        offset, odd = body + chunk_size + (chunk_size & 1), bool(chunk_size & 1)
    if fmt is None:
        detail = " (the file ends after its RIFF header)" if size <= 12 else ""
        raise AudioFileError(path, f"has no 'fmt ' chunk, so its format is unknown{detail}")
    if data is None:
        raise AudioFileError(path, "has no 'data' chunk: it holds no audio")
    return fmt, data


def _is_chunk_id(chunk_id: bytes) -> bool:
    return len(chunk_id) == 4 and all(0x20 <= byte <= 0x7E for byte in chunk_id)


@dataclass(frozen=True, slots=True)
class _Format:
    codec: str
    bits: int
    channels: int
    rate: int

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def _parse_fmt(fmt: bytes, path: Path) -> _Format:
    if len(fmt) < 16:
        raise AudioFileError(path, f"its 'fmt ' chunk is {len(fmt)} bytes, too short to describe audio (16 needed)")
    tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise AudioFileError(path, f"its WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is {len(fmt)} bytes (40 needed)")
        guid = fmt[24:40]
        if guid[2:] != _GUID_TAIL:
            raise AudioFileError(path, f"has an unknown WAVE_FORMAT_EXTENSIBLE sub-format {guid.hex()}; {_SOX_HINT}")
        (tag,) = struct.unpack_from("<H", guid)
    codec = _CODECS.get(tag)
    if codec is None:
        name = _OTHER_CODECS.get(tag, f"format tag 0x{tag:04x}")
        raise AudioFileError(path, f"is encoded as {name}, which voiceflow does not decode; {_SOX_HINT}")
    if channels == 0 or channels > MAX_CHANNELS:
        raise AudioFileError(path, f"claims {channels} channels (1 to {MAX_CHANNELS} are accepted)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFileError(path, f"claims a sample rate of {rate} Hz ({MIN_RATE} to {MAX_RATE} Hz are accepted)")
    if bits not in _SUPPORTED_BITS[codec]:
        allowed = "/".join(str(b) for b in _SUPPORTED_BITS[codec])
        raise AudioFileError(path, f"has {bits}-bit {codec} samples ({codec} is read as {allowed}-bit); {_SOX_HINT}")
    result = _Format(codec, bits, channels, rate)
    if align != result.frame_bytes:
        raise AudioFileError(path, f"has an inconsistent 'fmt ' chunk: block align {align} bytes, but "
                             f"{channels} channel(s) of {bits}-bit samples take {result.frame_bytes}")
    return result


def _g711_tables() -> dict[str, npt.NDArray[np.float32]]:
    """ITU-T G.711 expansion tables, so telephone recordings (8 kHz mu-law/A-law) play as they are."""
    code = np.arange(256, dtype=np.int32)
    mu = ~code & 0xFF
    magnitude = (((mu & 0x0F) << 3) + 0x84) << ((mu >> 4) & 7)
    mu_law = np.where(mu & 0x80, 0x84 - magnitude, magnitude - 0x84)
    a = code ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    a_law = np.where(a & 0x80, magnitude, -magnitude)
    return {"mu-law": mu_law.astype(np.float32), "A-law": a_law.astype(np.float32)}


_G711 = _g711_tables()


def _to_mono16(raw: bytes, info: WavInfo) -> bytes:
    """One block of sample frames as PCM16 mono: scaled to the int16 range, channels averaged."""
    if info.codec == "PCM" and info.bits == 16 and info.channels == 1:
        return raw
    samples: npt.NDArray[np.floating] = _scaled(raw, info)
    if info.channels > 1:
        samples = samples.reshape(-1, info.channels).mean(axis=1)
    return bytes(np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes())


def _scaled(raw: bytes, info: WavInfo) -> npt.NDArray[np.floating]:
    if info.codec in _G711:
        return _G711[info.codec][np.frombuffer(raw, dtype=np.uint8)]
    if info.codec == "IEEE float":
        values = np.frombuffer(raw, dtype="<f4" if info.bits == 32 else "<f8")
        finite: npt.NDArray[np.floating] = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0)
        return finite * 32768.0
    if info.bits == 8:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) * 256.0
    if info.bits == 16:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32)
    if info.bits == 24:
        wide = np.zeros((len(raw) // 3, 4), dtype=np.uint8)
        wide[:, 1:] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        return wide.view("<i4")[:, 0].astype(np.float64) / 65536.0
    return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0


_MAGIC = (
    (b"ID3", "MP3", "mp3"), (b"OggS", "Ogg", "ogg"), (b"fLaC", "FLAC", "flac"),
    (b"FORM", "AIFF", "aiff"), (b"\x1aE\xdf\xa3", "WebM/Matroska", "webm"), (b"#!AMR", "AMR", "amr"),
    (b".snd", "Sun AU", "au"), (b"caff", "CAF", "caf"), (b"RIFX", "a big-endian RIFX WAV", "wav"),
    (b"RF64", "an RF64 WAV", "wav"), (b"BW64", "a BW64 WAV", "wav"),
)


def _not_a_wav(head: bytes) -> str:
    """Name what the file looks like instead, from its first bytes, where that is cheap to tell."""
    kind = next(((name, ext) for magic, name, ext in _MAGIC if head.startswith(magic)), None)
    if kind is None and head[:4] == b"RIFF":
        kind = (f"a RIFF {head[8:12].decode('latin-1')!r} file, not WAVE", "avi")
    elif kind is None and head[4:8] == b"ftyp":
        kind = ("MP4/M4A", "m4a")
    elif kind is None and len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        kind = ("AAC", "aac") if head[1] & 0x06 == 0 else ("MP3", "mp3")
    if kind is not None:
        name, ext = kind
        return (f"is not a WAV file (it looks like {name}); convert it, e.g. "
                f"`ffmpeg -i in.{ext} out.wav` or `sox in.{ext} -b 16 out.wav`")
    text = head.decode("utf-8", "replace")
    if text.count("\ufffd") <= 1 and all(c.isprintable() or c in "\r\n\t\ufffd" for c in text):
        return "is not a WAV file (it looks like text)"
    return "is not a WAV file (it has no RIFF/WAVE header)"
