"""The simulated caller's sounds, as PCM16 mono at 16 kHz: speech from espeak-ng, recordings,
noise, a cough, hold music from sox, silence.

Each sound is a :class:`Clip` that also knows where its voice is and when each of its words is
said (spread over the voiced stretches by length: good to a word, which is what the caller-script
recogniser and the checks need). Synthesis is deterministic (fixed seeds, sox in
repeatable mode) and cached, so a scenario sounds the same on every run.
"""

from __future__ import annotations

import difflib
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voiceflow.audio import read_wav
from voiceflow.frames import SAMPLE_RATE
from voiceflow.scenarios.model import CallerEvent

Samples = npt.NDArray[np.int16]

VOICED_BELOW_PEAK_DB = 35.0
"""A 10 ms block within this many dB of the loudest one is voice (for word timing and onsets)."""
TRIM_BELOW_PEAK_DB = 60.0
TRIM_MARGIN = 0.03
"""espeak-ng's silence around a line is cut to this margin beyond anything within
:data:`TRIM_BELOW_PEAK_DB` of the peak: a quiet final "s" is speech a recogniser needs."""

NOISE_DBFS = -30.0
COUGH_PEAK_DBFS = -6.0
MUSIC_DBFS = -20.0


class SoundError(RuntimeError):
    """A sound could not be made (a missing program, a failing synthesis)."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass
class Clip:
    """A sound for the caller to play: samples, the words in it, and where its voice is."""

    samples: Samples
    words: list[Word] = field(default_factory=list)
    runs: list[tuple[float, float]] = field(default_factory=list)
    """Seconds (from the clip's start) of each stretch of voice (or noise), in order."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def onset(self) -> float | None:
        """When its first voiced sound begins (``None``: nothing voiced)."""
        return self.runs[0][0] if self.runs else None

    def then(self, other: Clip) -> Clip:
        """This clip followed by ``other``."""
        shift = self.seconds
        words = self.words + [Word(w.text, w.start + shift, w.end + shift) for w in other.words]
        runs = self.runs + [(start + shift, end + shift) for start, end in other.runs]
        return Clip(np.concatenate([self.samples, other.samples]), words, runs)


def quiet(seconds: float) -> Clip:
    return Clip(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16))


def clip_for(event: CallerEvent, *, voice: str, rate: int, pitch: int, seed: int) -> Clip:
    """The sound of one caller move (``voice``, ``rate`` and ``pitch`` for speech without its own)."""
    match event.action:
        case "say":
            assert event.say is not None
            clip = quiet(0.0)
            for piece in event.say:
                if isinstance(piece, str):
                    spoken = speech(piece, event.voice or voice, event.rate or rate, event.pitch or pitch)
                    clip = clip.then(spoken)
                else:
                    clip = clip.then(quiet(piece))
        case "audio":
            assert event.audio is not None
            clip = recording(event.audio, event.start, event.end, event.text)
            for pause in sorted(event.pauses, key=lambda p: p.at, reverse=True):
                clip = inserted(clip, pause.at, quiet(pause.seconds))
        case "noise":
            assert event.noise is not None
            clip = noise(event.noise, NOISE_DBFS, seed)
        case "cough":
            assert event.cough is not None
            clip = cough(event.cough, seed)
        case "music":
            assert event.music is not None
            clip = music(event.music)
        case "press":
            assert event.press is not None
            clip = quiet(len(event.press) * event.key_gap)  # the keys go out of band, beside it
        case _:
            assert event.silence is not None
            clip = quiet(event.silence)
    return gained(clip, event.gain) if event.gain else clip


def _espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SoundError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    return binary


@functools.lru_cache(maxsize=4)
def _voice_names(kind: str) -> frozenset[str]:
    """What ``espeak-ng --voices`` (``kind`` "" or "=variant") calls its voices: languages, names,
    files and their last part, lower case."""
    listing = subprocess.run([_espeak_binary(), f"--voices{kind}"], capture_output=True, text=True,
                             check=True, timeout=30).stdout.splitlines()[1:]
    names: set[str] = set()
    for row in listing:
        columns = row.split()
        if len(columns) >= 5:
            names.update(name.lower() for name in (columns[1], columns[3], columns[4], columns[4].rsplit("/", 1)[-1]))
    return frozenset(names)


def check_voice(voice: str) -> None:
    """espeak-ng says an unknown voice in its default one without a word: refuse it instead."""
    base, _, variant = voice.lower().partition("+")
    if base not in _voice_names(""):
        close = difflib.get_close_matches(base, sorted(_voice_names("")), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SoundError(f"espeak-ng has no voice {voice!r}{hint}; `espeak-ng --voices` lists them")
    if variant and variant not in _voice_names("=variant"):
        raise SoundError(f"espeak-ng has no variant {variant!r}; `espeak-ng --voices=variant` lists them")


@functools.lru_cache(maxsize=256)
def _espeak(text: str, voice: str, rate: int, pitch: int) -> bytes:
    binary = _espeak_binary()
    check_voice(voice)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        try:
            subprocess.run([binary, "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(wav), "--", text],
                           check=True, capture_output=True, timeout=60)
        except subprocess.CalledProcessError as exc:
            problem = exc.stderr.decode(errors="replace").strip() or f"exit status {exc.returncode}"
            raise SoundError(f"espeak-ng could not say {text!r} with voice {voice!r}: {problem}") from None
        return read_wav(wav)


def speech(text: str, voice: str, rate: int, pitch: int) -> Clip:
    """``text`` said by espeak-ng, trimmed to its voice (espeak-ng pads both ends with silence)."""
    samples = np.frombuffer(_espeak(text, voice, rate, pitch), dtype=np.int16)
    sounding = voiced_runs(samples, below_peak_db=TRIM_BELOW_PEAK_DB)
    if not sounding:
        return Clip(samples.copy())
    margin = round(TRIM_MARGIN * SAMPLE_RATE)
    first = max(0, round(sounding[0][0] * SAMPLE_RATE) - margin)
    last = min(len(samples), round(sounding[-1][1] * SAMPLE_RATE) + margin)
    return said(Clip(samples[first:last].copy()), text)


def said(clip: Clip, text: str) -> Clip:
    """``clip`` knowing that it says ``text``: the words placed over its voiced stretches."""
    runs = clip.runs or voiced_runs(clip.samples)
    return Clip(clip.samples, spread(text, runs), runs)


def recording(path: Path, start: float | None, end: float | None, text: str | None) -> Clip:
    """A WAV file (any rate, mixed to mono), cut to ``start``–``end``; ``text`` is what it says."""
    samples = np.frombuffer(read_wav(path), dtype=np.int16)
    first = round((start or 0.0) * SAMPLE_RATE)
    last = len(samples) if end is None else min(len(samples), round(end * SAMPLE_RATE))
    clip = Clip(samples[first:last].copy(), runs=voiced_runs(samples[first:last]))
    return said(clip, text) if text else clip


def inserted(clip: Clip, at: float, gap: Clip) -> Clip:
    """``gap`` put into ``clip`` at ``at`` seconds; what comes after moves on by its length."""
    cut = min(len(clip.samples), round(at * SAMPLE_RATE))
    point, shift = cut / SAMPLE_RATE, gap.seconds

    def moved(t: float) -> float:
        return t + shift if t > point else t

    words = [Word(w.text, w.start + shift * (w.start >= point), moved(w.end)) for w in clip.words]
    runs: list[tuple[float, float]] = []
    for start, end in clip.runs:
        if start < point < end:  # the pause splits this stretch of voice
            runs += [(start, point), (point + shift, end + shift)]
        else:
            runs.append((start + shift * (start >= point), moved(end)))
    return Clip(np.concatenate([clip.samples[:cut], gap.samples, clip.samples[cut:]]), words, runs)


def spread(text: str, runs: list[tuple[float, float]]) -> list[Word]:
    """The words of ``text`` placed over the voiced ``runs`` in proportion to their length: each
    word takes its share of the voiced time, skipping the silences between runs (a sentence
    pause is not inside a word)."""
    tokens = text.split()
    total_chars = sum(len(token) + 1 for token in tokens)
    voiced = sum(end - start for start, end in runs)
    if not tokens or voiced <= 0:
        return []

    def at(share: float) -> float:
        """The clip time at which ``share`` of the voiced time has gone by."""
        left = share * voiced
        for start, end in runs:
            if left <= end - start:
                return start + left
            left -= end - start
        return runs[-1][1]

    words, chars = [], 0
    for token in tokens:
        begin = at(chars / total_chars)
        chars += len(token) + 1
        words.append(Word(token, begin, at(chars / total_chars)))
    return words


RUN_GAP = 0.1
"""Silences shorter than this (stops inside words) do not split a stretch of voice."""


def voiced_runs(samples: Samples, below_peak_db: float = VOICED_BELOW_PEAK_DB) -> list[tuple[float, float]]:
    """The stretches of voice in ``samples`` (seconds): 10 ms blocks within ``below_peak_db`` of
    the loudest, joined across gaps shorter than :data:`RUN_GAP`."""
    hop = SAMPLE_RATE // 100
    usable = len(samples) - len(samples) % hop
    if usable == 0:
        return []
    power = np.square(samples[:usable].astype(np.float64)).reshape(-1, hop).mean(axis=1)
    if power.max() <= 0:
        return []
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-below_peak_db / 10.0))
    runs: list[tuple[float, float]] = []
    for block in loud:
        start, end = block * hop / SAMPLE_RATE, (block + 1) * hop / SAMPLE_RATE
        if runs and start - runs[-1][1] < RUN_GAP:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def noise(seconds: float, dbfs: float, seed: int) -> Clip:
    """White noise at ``dbfs`` RMS."""
    rms = 32768.0 * 10.0 ** (dbfs / 20.0)
    values = np.random.default_rng(seed).normal(0.0, rms, round(seconds * SAMPLE_RATE))
    return Clip(to_pcm(values), runs=[(0.0, seconds)])


def cough(seconds: float, seed: int) -> Clip:
    """A cough's shape: a sharp burst of low-passed noise that dies away."""
    n = round(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    raw = np.convolve(rng.normal(0.0, 1.0, n), np.ones(6) / 6, mode="same")  # duller than white noise
    t = np.arange(n) / SAMPLE_RATE
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t / max(seconds / 4, 0.02))
    shaped = raw * envelope
    peak = float(np.abs(shaped).max()) or 1.0
    return Clip(to_pcm(shaped / peak * 32767 * 10.0 ** (COUGH_PEAK_DBFS / 20.0)), runs=[(0.0, seconds)])


NOTES = (("C4", "E4", "G4"), ("A3", "C4", "E4"), ("F3", "A3", "C4"), ("G3", "B3", "D4"))
"""The hold music's chords, each plucked for half a second."""


@functools.lru_cache(maxsize=16)
def _sox_music(seconds: float) -> bytes:
    binary = shutil.which("sox")
    if binary is None:
        raise SoundError("sox is not installed (Debian: apt-get install sox)")
    chords: list[str] = []
    for index in range(max(1, int(np.ceil(seconds / 0.5)))):
        if index:
            chords.append(":")
        chords += ["synth", "0.5", *[part for note in NOTES[index % len(NOTES)] for part in ("pluck", note)]]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "music.wav"
        command = [binary, "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav), *chords,
                   "trim", "0", f"{seconds:.3f}", "norm", f"{MUSIC_DBFS + 3:.1f}"]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise SoundError(f"sox could not make hold music: {exc.stderr.decode(errors='replace').strip()}") from None
        return read_wav(wav)


def music(seconds: float) -> Clip:
    """Hold music: plucked chords from sox, peaking near -17 dBFS."""
    return Clip(np.frombuffer(_sox_music(round(seconds, 3)), dtype=np.int16).copy(), runs=[(0.0, seconds)])


def gained(clip: Clip, db: float) -> Clip:
    return Clip(to_pcm(clip.samples.astype(np.float64) * 10.0 ** (db / 20.0)), clip.words, clip.runs)


def to_pcm(values: npt.NDArray[np.float64]) -> Samples:
    return np.clip(np.round(values), -32768, 32767).astype(np.int16)
