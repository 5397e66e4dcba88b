"""Caller recordings from anywhere: what voiceflow can play decodes to the right length and level,
everything else is refused with one line that names the file and the problem.

The corpus is built here: WAV files assembled byte by byte (every header field and chunk layout
a writer can get wrong), real speech from espeak-ng converted by SoX to the formats phones and
editors produce, and paths that are not files at all. Refusals are checked through
``check_recording``, ``read_wav`` and the real ``voiceflow run --input``, which must fail fast
(exit 2, one stderr line, no traceback) before any model is touched.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from voiceflow.audio import AudioFileError, check_recording, display_path, read_wav

ROOT = Path(__file__).resolve().parents[2]
VOICEFLOW = str(Path(sys.executable).parent / "voiceflow")
PCM, FLOAT, ALAW, MULAW, EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


# --- building WAVs byte by byte -----------------------------------------------------------------


def chunk(chunk_id: bytes, body: bytes, size: int | None = None, pad: bool = True) -> bytes:
    """A RIFF chunk; ``size`` may lie about the body, ``pad=False`` drops the odd-size pad byte."""
    declared = len(body) if size is None else size
    return chunk_id + struct.pack("<I", declared) + body + (b"\0" if pad and len(body) % 2 else b"")


def fmt(tag: int = PCM, channels: int = 1, rate: int = 16_000, bits: int = 16, *,
        align: int | None = None, sub: int | None = None, guid_tail: bytes = GUID_TAIL,
        extra: bytes = b"") -> bytes:
    """A 'fmt ' chunk; ``sub`` makes it WAVE_FORMAT_EXTENSIBLE with that sub-format."""
    block = channels * bits // 8 if align is None else align
    body = struct.pack("<HHIIHH", EXTENSIBLE if sub is not None else tag, channels, rate, rate * block, block, bits)
    if sub is not None:
        body += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub) + guid_tail
    return chunk(b"fmt ", body + extra)


def riff(*chunks: bytes, form: bytes = b"WAVE", size: int | None = None) -> bytes:
    body = form + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """A 440 Hz sine at half scale, the same on every channel: RMS 0.354 of full scale."""
    t = np.arange(round(rate * seconds)) / rate
    return np.repeat((0.5 * np.sin(2 * np.pi * 440 * t))[:, None], channels, axis=1)


def encode(samples: np.ndarray, bits: int, floating: bool = False) -> bytes:
    if floating:
        return samples.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return bytes(np.clip(np.rint(samples * 128 + 128), 0, 255).astype(np.uint8).tobytes())
    scaled: np.ndarray = np.rint(samples * (2 ** (bits - 1) - 1)).astype("<i4")
    if bits == 24:
        return scaled.reshape(-1, 1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return scaled.astype("<i2" if bits == 16 else "<i4").tobytes()


def tone_wav(rate: int = 16_000, bits: int = 16, channels: int = 1, seconds: float = 0.5, *,
             floating: bool = False, extensible: bool = False, before: bytes = b"", after: bytes = b"") -> bytes:
    data = encode(tone(rate, seconds, channels).ravel(), bits, floating)
    tag = FLOAT if floating else PCM
    header = fmt(tag, channels, rate, bits, sub=tag if extensible else None)
    return riff(before, header, chunk(b"data", data), after)


TONE_RMS = 0.5 / math.sqrt(2) * 32768


# (bytes, input rate, input frames, expected RMS or None when the content is deliberately odd)
ACCEPTED: dict[str, tuple[bytes, int, int, float | None]] = {
    "pcm16": (tone_wav(), 16_000, 8000, TONE_RMS),
    "pcm8": (tone_wav(bits=8), 16_000, 8000, TONE_RMS),
    "pcm24": (tone_wav(bits=24), 16_000, 8000, TONE_RMS),
    "pcm32": (tone_wav(bits=32), 16_000, 8000, TONE_RMS),
    "float32": (tone_wav(bits=32, floating=True), 16_000, 8000, TONE_RMS),
    "float64": (tone_wav(bits=64, floating=True), 16_000, 8000, TONE_RMS),
    "stereo-48k": (tone_wav(48_000, channels=2), 48_000, 24_000, TONE_RMS),
    "8k": (tone_wav(8_000), 8_000, 4000, TONE_RMS),
    "44k1": (tone_wav(44_100), 44_100, 22_050, TONE_RMS),
    "extensible-pcm24-stereo": (tone_wav(bits=24, channels=2, extensible=True), 16_000, 8000, TONE_RMS),
    "extensible-float32": (tone_wav(bits=32, floating=True, extensible=True), 16_000, 8000, TONE_RMS),
    "32-channels-at-4000Hz": (tone_wav(4_000, channels=32), 4_000, 2000, TONE_RMS),
    "384000Hz": (tone_wav(384_000, seconds=0.1), 384_000, 38_400, TONE_RMS),
    "list-before-fmt": (tone_wav(before=chunk(b"LIST", b"INFOISFT\x05\0\0\0sox!\0")), 16_000, 8000, TONE_RMS),
    "data-before-fmt": (riff(chunk(b"data", encode(tone(16_000, 0.5).ravel(), 16)), fmt()), 16_000, 8000, TONE_RMS),
    "odd-chunk-padded": (tone_wav(before=chunk(b"junk", b"abc")), 16_000, 8000, TONE_RMS),
    "odd-chunk-unpadded": (tone_wav(before=chunk(b"junk", b"abc", pad=False)), 16_000, 8000, TONE_RMS),
    "trailing-garbage": (tone_wav(after=b"\xff\x00garbage after the data"), 16_000, 8000, TONE_RMS),
    "fmt-with-cbsize": (riff(fmt(extra=b"\0\0"), chunk(b"data", encode(tone(16_000, 0.5).ravel(), 16))),
                        16_000, 8000, TONE_RMS),
    "riff-size-zero": (riff(fmt(), chunk(b"data", encode(tone(16_000, 0.5).ravel(), 16)), size=0), 16_000, 8000,
                       TONE_RMS),
    "pcm8-odd-frames-padded": (riff(fmt(bits=8), chunk(b"data", b"\x80" * 8001)), 16_000, 8001, None),
    "float-nan-inf": (riff(fmt(FLOAT, bits=32), chunk(b"data", np.array([np.nan, np.inf, -np.inf, 2.0] * 100,
                                                                      "<f4").tobytes())), 16_000, 400, None),
    "mu-law-silence": (riff(fmt(MULAW, bits=8), chunk(b"data", b"\xff" * 800)), 16_000, 800, None),
    "a-law-silence": (riff(fmt(ALAW, bits=8), chunk(b"data", b"\xd5" * 800)), 16_000, 800, None),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_unusual_but_valid_wavs_decode_to_the_right_length_and_level(name: str, tmp_path: Path) -> None:
    data, rate, frames, rms = ACCEPTED[name]
    path = tmp_path / f"{name}.wav"
    path.write_bytes(data)
    info = check_recording(path)
    assert (info.rate, info.frames) == (rate, frames)
    pcm = read_wav(path)
    assert len(pcm) % 2 == 0
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    assert abs(len(samples) - frames * 16_000 / rate) <= 1
    if rms is not None:
        assert abs(np.sqrt(np.mean(samples**2)) / rms - 1) < 0.05
    if name.endswith("silence"):
        assert np.abs(samples).max() <= 8


# --- refusals -------------------------------------------------------------------------------------

PCM16 = encode(tone(16_000, 0.1).ravel(), 16)

# (bytes, words the one line must contain)
REFUSED: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "empty": (b"", ("is empty",)),
    "text": (b"# not audio\nhello, this is a README\n", ("is not a WAV file", "text")),
    "mp3-id3": (b"ID3\x04\x00\x00\x00\x00\x00\x21" + b"\0" * 64, ("is not a WAV file", "MP3", "sox")),
    "mp3-frames": (b"\xff\xfb\x90\x64" + b"\0" * 400, ("is not a WAV file", "MP3")),
    "ogg": (b"OggS\x00\x02" + b"\0" * 60, ("is not a WAV file", "Ogg")),
    "flac": (b"fLaC\x00\x00\x00\x22" + b"\0" * 40, ("is not a WAV file", "FLAC")),
    "random-binary": (bytes(range(256)) * 4, ("is not a WAV file",)),
    "avi": (riff(chunk(b"LIST", b"hdrl"), form=b"AVI "), ("is not a WAV file", "AVI")),
    "riff-truncated-header": (b"RIFF\x24\x00", ("truncated", "RIFF header")),
    "riff-header-only": (riff(), ("no 'fmt ' chunk", "ends after its RIFF header")),
    "no-fmt": (riff(chunk(b"data", PCM16)), ("no 'fmt ' chunk",)),
    "no-data": (riff(fmt(), chunk(b"LIST", b"INFO")), ("no 'data' chunk",)),
    "fmt-too-short": (riff(chunk(b"fmt ", b"\x01\x00\x01\x00"), chunk(b"data", PCM16)), ("'fmt ' chunk is 4 bytes",)),
    "truncated-data": (riff(fmt(), chunk(b"data", PCM16, size=len(PCM16) * 10)),
                       ("truncated", f"declares {len(PCM16) * 10} bytes", f"holds {len(PCM16)}", "sox")),
    "streamed-size": (riff(fmt(), chunk(b"data", PCM16, size=0xFFFFFFFF)), ("truncated", "--ignore-length")),
    "truncated-list": (riff(fmt(), chunk(b"LIST", b"INFO", size=1 << 20)), ("truncated", "'LIST' chunk")),
    "corrupt-chunk-id": (riff(fmt(), b"\x00\x01\x02\x03" + struct.pack("<I", 4) + b"abcd", chunk(b"data", PCM16)),
                         ("corrupt", "byte 36")),
    "odd-byte-count": (riff(fmt(), chunk(b"data", PCM16 + b"\x01")), ("not a whole number", "2-byte sample frames")),
    "zero-rate": (riff(fmt(rate=0), chunk(b"data", PCM16)), ("sample rate of 0 Hz",)),
    "huge-rate": (riff(fmt(rate=10_000_000), chunk(b"data", PCM16)), ("sample rate of 10000000 Hz",)),
    "low-rate": (riff(fmt(rate=100), chunk(b"data", PCM16)), ("sample rate of 100 Hz",)),
    "zero-channels": (riff(fmt(channels=0, align=2), chunk(b"data", PCM16)), ("0 channels",)),
    "absurd-channels": (riff(fmt(channels=4000), chunk(b"data", PCM16)), ("4000 channels",)),
    "12-bit": (riff(fmt(bits=12, align=2), chunk(b"data", PCM16)), ("12-bit PCM", "sox")),
    "float16": (riff(fmt(FLOAT, bits=16), chunk(b"data", PCM16)), ("16-bit IEEE float",)),
    "adpcm": (riff(fmt(2, bits=4, align=256), chunk(b"data", PCM16)), ("Microsoft ADPCM", "sox in.wav -b 16")),
    "mp3-in-wav": (riff(fmt(0x55, bits=0, align=1), chunk(b"data", PCM16)), ("MP3",)),
    "unknown-codec": (riff(fmt(0x1234), chunk(b"data", PCM16)), ("format tag 0x1234",)),
    "extensible-unknown-guid": (riff(fmt(sub=1, guid_tail=b"\x01" * 14), chunk(b"data", PCM16)), ("sub-format",)),
    "extensible-short": (riff(chunk(b"fmt ", struct.pack("<HHIIHH", EXTENSIBLE, 1, 16000, 32000, 2, 16)),
                              chunk(b"data", PCM16)), ("EXTENSIBLE", "40 needed")),
    "bad-block-align": (riff(fmt(align=3), chunk(b"data", PCM16)), ("block align 3",)),
    "no-audio": (riff(fmt(), chunk(b"data", b"")), ("holds no audio",)),
}


def sparse_seven_hours(path: Path) -> None:
    """A 7-hour 4 kHz 8-bit header over a sparse file: 100 MB that take no disk and no reading."""
    size = 7 * 3600 * 4000
    path.write_bytes(riff(fmt(rate=4000, bits=8), chunk(b"data", b"", size=size), size=size + 36))
    with path.open("r+b") as file:
        file.truncate(44 + size)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def broken_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone.wav")


# (make the path, words the one line must contain)
SPECIAL: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "seven-hours": (sparse_seven_hours, ("7.0 hours long", "up to 6 hours")),
    "missing": (lambda path: None, ("no such recording",)),
    "directory": (lambda path: path.mkdir(), ("is a directory",)),
    "fifo": (fifo, ("is not a regular file", "FIFO")),
    "broken-symlink": (broken_link, ("broken symbolic link",)),
    "newline\nin-name": (lambda path: path.write_bytes(b""), ("is empty",)),
    "not-utf8-\udcff-name": (lambda path: path.write_bytes(b"RIFF"), ("truncated",)),
}


def make_refused(name: str, tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    path = tmp_path / f"{name}.wav"
    if name in REFUSED:
        data, words = REFUSED[name]
        path.write_bytes(data)
        return path, words
    make, words = SPECIAL[name]
    make(path)
    return path, words


def assert_one_line(message: str, path: Path, words: tuple[str, ...]) -> None:
    assert "\n" not in message.strip(), message
    assert display_path(path) in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


REFUSED_NAMES = [*REFUSED, *SPECIAL]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_malformed_recordings_are_refused_in_one_line(name: str, tmp_path: Path) -> None:
    path, words = make_refused(name, tmp_path)
    started = time.monotonic()
    for read in (check_recording, read_wav):
        with pytest.raises(AudioFileError) as caught:
            read(path)
        assert_one_line(str(caught.value), path, words)
    assert time.monotonic() - started < 2, "refusals come from the header, never from reading the audio"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_recording_gives_the_os_reason(tmp_path: Path) -> None:
    path = tmp_path / "secret.wav"
    path.write_bytes(tone_wav())
    path.chmod(0)
    with pytest.raises(AudioFileError) as caught:
        check_recording(path)
    assert_one_line(str(caught.value), path, ("Permission denied",))


def test_a_character_device_is_not_a_recording() -> None:
    with pytest.raises(AudioFileError) as caught:
        read_wav("/dev/zero")
    assert_one_line(str(caught.value), Path("/dev/zero"), ("is not a regular file", "device"))


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOICEFLOW_CACHE": str(cache)}
    return subprocess.run([VOICEFLOW, "run", "agents/local.yaml", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30, errors="backslashreplace")


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_the_cli_refuses_a_bad_input_in_one_line_before_any_model_loads(name: str, tmp_path: Path) -> None:
    path, words = make_refused(name, tmp_path)
    cache, out = tmp_path / "cache", tmp_path / "out.wav"
    started = time.monotonic()
    result = run_cli("--input", str(path), "--output", str(out), cache=cache)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("--input: "), line
    assert_one_line(line, path, words)
    assert not cache.exists() and not out.exists(), "nothing may be loaded or written"
    assert time.monotonic() - started < 15


# --- real speech in the formats other tools write -------------------------------------------------

SOX_VARIANTS = {
    "8-bit": ["-b", "8"], "24-bit": ["-b", "24"], "32-bit": ["-b", "32"],
    "float32": ["-e", "floating-point", "-b", "32"], "float64": ["-e", "floating-point", "-b", "64"],
    "24-bit-plain-header": ["-t", "wavpcm", "-b", "24"], "stereo": ["-c", "2"],
    "6-channels-extensible": ["-c", "6"], "8kHz": ["-r", "8000"], "44.1kHz": ["-r", "44100"],
    "mu-law": ["-e", "mu-law"], "a-law": ["-e", "a-law"], "8kHz-mu-law-phone": ["-r", "8000", "-e", "mu-law"],
}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        pytest.skip("apt-get install espeak-ng sox")
    folder = tmp_path_factory.mktemp("speech")
    subprocess.run([espeak, "-v", "en-us", "-w", str(folder / "speech.wav"), "What is the capital of France?"],
                   check=True, capture_output=True)
    for name, args in SOX_VARIANTS.items():
        subprocess.run([sox, "-D", str(folder / "speech.wav"), *args, str(folder / f"{name}.wav")],
                       check=True, capture_output=True)
    yield folder


def sox_length(path: Path) -> tuple[int, int]:
    """Sample frames and rate as SoX reads them: an independent opinion on the header."""
    frames = subprocess.run(["soxi", "-s", str(path)], check=True, capture_output=True, text=True).stdout
    rate = subprocess.run(["soxi", "-r", str(path)], check=True, capture_output=True, text=True).stdout
    return int(frames), int(rate)


@pytest.mark.parametrize("variant", list(SOX_VARIANTS))
def test_real_speech_in_every_format_decodes_to_the_same_speech(variant: str, speech: Path) -> None:
    reference = np.frombuffer(read_wav(speech / "speech.wav"), "<i2").astype(np.float64)
    path = speech / f"{variant}.wav"
    frames, rate = sox_length(path)
    decoded = np.frombuffer(read_wav(path), "<i2").astype(np.float64)
    assert abs(len(decoded) - frames * 16_000 / rate) <= 1
    assert abs(len(decoded) - len(reference)) <= 2
    level = 20 * np.log10(np.sqrt(np.mean(decoded**2)) / np.sqrt(np.mean(reference**2)))
    assert abs(level) < 1.0, f"speech level off by {level:.2f} dB"
    n = min(len(decoded), len(reference))
    assert np.corrcoef(decoded[:n], reference[:n])[0, 1] > 0.9


# --- an agent file naming a bad recording ---------------------------------------------------------


def test_validate_points_at_the_input_line_of_an_agent_file(tmp_path: Path) -> None:
    bad = tmp_path / "caller.wav"
    bad.write_bytes(riff(fmt(), chunk(b"data", PCM16, size=999_999)))
    agent = tmp_path / "agent.yaml"
    agent.write_text((ROOT / "agents/local.yaml").read_text().replace("recordings/capital.wav", "caller.wav"))
    line = next(n for n, text in enumerate(agent.read_text().splitlines(), 1) if "  input: caller.wav" in text)
    result = subprocess.run([VOICEFLOW, "validate", str(agent)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{agent}:{line}:10: transport.input: {bad}: is truncated"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# --- property: whatever the header says, a decoded buffer or one line -----------------------------

BASES = [
    riff(fmt(channels=2, rate=8000), chunk(b"LIST", b"INFOISFT\x04\0\0\0abc\0"),
         chunk(b"data", encode(tone(8000, 0.02, 2).ravel(), 16))),
    tone_wav(22_050, bits=24, channels=3, seconds=0.01, extensible=True),
    riff(fmt(MULAW, bits=8), chunk(b"data", bytes(range(256)))),
]
FIELDS = {"riff size": (4, "<I"), "fmt size": (16, "<I"), "tag": (20, "<H"), "channels": (22, "<H"),
          "rate": (24, "<I"), "byte rate": (28, "<I"), "align": (32, "<H"), "bits": (34, "<H"),
          "next chunk size": (40, "<I"), "cb size": (36, "<H")}
EDGES = [0, 1, 2, 3, 4, 7, 8, 16, 24, 32, 64, 255, 3999, 4000, 384_000, 384_001, 0xFFFE, 0xFFFF, 0x7FFFFFFF,
         0xFFFFFFFF]


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(range(len(BASES))),
    edits=st.lists(st.tuples(st.sampled_from(sorted(FIELDS)), st.one_of(
        st.sampled_from(EDGES), st.integers(0, 64), st.integers(0, 0xFFFFFFFF))), max_size=3),
    splice=st.one_of(st.none(), st.tuples(st.integers(0, 120), st.binary(max_size=12))),
    cut=st.one_of(st.none(), st.integers(0, 800)),
)
def test_any_header_damage_gives_audio_or_one_line(
    base: int, edits: list[tuple[str, int]], splice: tuple[int, bytes] | None, cut: int | None
) -> None:
    data = bytearray(BASES[base])
    for field, value in edits:
        offset, code = FIELDS[field]
        struct.pack_into(code, data, offset, value & (0xFFFF if code == "<H" else 0xFFFFFFFF))
    if splice is not None:
        data[splice[0] : splice[0] + len(splice[1])] = splice[1]
    if cut is not None:
        del data[cut:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.wav"
        path.write_bytes(bytes(data))
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(10)
        try:
            checked: AudioFileError | None = None
            try:
                check_recording(path)
            except AudioFileError as exc:
                checked = exc
            try:
                pcm = read_wav(path)
            except AudioFileError as exc:
                assert checked is not None, "read_wav refused what check_recording accepted"
                assert str(exc) == str(checked) and "\n" not in str(exc) and str(path) in str(exc)
                event("refused")
            else:
                assert checked is None, "read_wav decoded what check_recording refused"
                assert isinstance(pcm, bytes) and len(pcm) % 2 == 0
                event("decoded")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
