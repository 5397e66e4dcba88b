"""The agent's own voice coming back on the caller's line, measured and subtracted.

A speakerphone, or a laptop's speakers next to its microphone, sends what the agent says back
into the caller's audio some tens to hundreds of milliseconds later and some decibels quieter.
Without a defence the VAD hears a caller talking over the agent, the agent stops for its own
voice, and after it finishes the last of its echo is answered as a caller's turn.

The defence here is an echo canceller of the simplest kind that holds up: what the agent played
(the *reference*, placed at the times the transport reported it heard) is compared with what
came back, the echo path's delay and level are measured on each call, and the estimated echo is
subtracted from each caller frame before the VAD, the recogniser and the end-of-turn model get
it. What is left is the caller. A caller who talks over the agent's echo is still heard, because
their voice does not correlate with anything the agent played.

* **Measuring the path**: a normalised cross-correlation of the last second of caller audio
  with the reference over every delay up to ``max_delay``, at a quarter of the sample rate
  (one FFT product), then refined at the full rate around the peak. It runs a few times a
  second until the path is found, then once a second to follow a path that changes.
* **Knowing there is none**: a line that stays silent (40 dB under what the agent played, at
  every delay) while the agent talks brings no echo: known within about half a second of agent
  speech, else after :data:`ABSENT_AFTER` of agent audio with no path found. Until then the
  caller's speech over the agent is searched every few frames, and barge-in holds the reply
  only at the detector's speech start (:mod:`voiceflow.turns.overlap_watch`).
* **Subtracting**: a short adaptive filter (:data:`TAPS` taps around the measured delay, block
  NLMS) models the path's level and its spread; it adapts only on frames it already explains
  (so a caller talking over the echo does not teach it their voice), and its output is used only
  when it removes energy (a filter gone wrong never adds any).
* **Cost**: nothing at all while nothing the agent played can still be coming back; otherwise a
  (320 × 32) matrix product or two per 20 ms frame (benchmarks/echo_cancel.py measures it).

Rooms with long reverberation need a full acoustic echo canceller (WebRTC's AEC3, as browsers
run); this one removes the direct path, which is what makes an agent interrupt itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voiceflow.config.echo import EchoDefence
from voiceflow.frames import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame

Signal = npt.NDArray[np.float32]

TAPS = 32
"""Filter length in samples (2 ms): the direct path, a fraction of a sample either side, and
the first reflections close behind it."""

LEAD = 8
"""Taps before the measured delay: the correlation peak can be a sample or two late."""

WINDOW = SAMPLE_RATE // 2
"""Caller samples correlated when measuring the path (half a second)."""

DECIMATE = 8
"""The coarse search runs at 2 kHz: the energy of speech, and its correlation, are mostly below 1 kHz."""

SEARCH_EVERY = 3
"""Frames between attempts to find the path while it is unknown (60 ms): the sooner it is found,
the less of the first echo reaches the VAD."""

RECHECK_EVERY = 50
"""Frames between checks of a known path (one second): a phone moved on the desk changes it. A
line found to bring nothing back is searched as often, in case that changes."""

MIN_CORRELATION = 0.5
"""A path is taken as found when the caller's audio correlates at least this well with what was
played at one delay. Speech that is not the agent's correlates below 0.1."""

MIN_LEVEL = 30.0
"""RMS (of full scale 32768) of a caller frame below which there is too little to measure a path
in (-61 dBFS): a quiet line, or an echo that has not begun."""

STEP = 0.5
"""The NLMS step: large enough to follow a level that drifts, small enough to stay stable."""

ABSENT_AFTER = 2 * SAMPLE_RATE
"""Samples of the agent's audio played without a path found, after which the line is taken to
have no echo (a headset, or a line that cancels it already)."""

QUIET_BELOW_DB = -40.0
"""A line that stayed this far below what the agent played, over :data:`WINDOW` and at every
delay its echo could have, is taken to bring no echo worth the name at once, without waiting
for :data:`ABSENT_AFTER` (speakerphones send back -6 to -30 dB)."""

LOUD_ENOUGH = 10 * MIN_LEVEL
"""RMS the agent's audio must keep over each of those windows for the line's quiet to count."""


class _Recent:
    """A signal addressed by absolute sample number, keeping only its most recent stretch."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._buf = np.zeros(2 * keep, dtype=np.float32)
        self.start = 0
        """Sample number of ``_buf[0]``."""
        self.end: int | None = None
        """Sample number just after the newest sample written (``None``: nothing yet)."""

    def write(self, at: int, samples: Signal) -> None:
        if self.end is None:
            self.start = self.end = at
        stop = at + len(samples)
        if stop - self.start > len(self._buf):
            self._shift(max(stop - self.keep, self.start))
        if at < self.start:
            samples = samples[self.start - at :]
            at = self.start
        if len(samples) == 0:
            return
        if at > self.end:
            self._buf[self.end - self.start : at - self.start] = 0.0
        self._buf[at - self.start : stop - self.start] = samples
        self.end = max(self.end, stop)

    def _shift(self, new_start: int) -> None:
        assert self.end is not None
        kept = max(0, self.end - new_start)
        if kept:
            self._buf[:kept] = self._buf[new_start - self.start : self.end - self.start]
        self._buf[kept:] = 0.0
        self.start = new_start
        self.end = max(self.end, new_start)

    def read(self, lo: int, hi: int) -> Signal:
        """Samples ``lo`` to ``hi``; zeros where nothing is known."""
        out = np.zeros(hi - lo, dtype=np.float32)
        if self.end is None:
            return out
        a, b = max(lo, self.start), min(hi, self.end)
        if b > a:
            out[a - lo : b - lo] = self._buf[a - self.start : b - self.start]
        return out


class EchoCanceller:
    """One call's echo canceller: fed what the agent played, it cleans what the caller sends."""

    def __init__(self, settings: EchoDefence) -> None:
        self.settings = settings
        self.max_lag = max(TAPS, round(settings.max_delay * SAMPLE_RATE))
        self._reference = _Recent(WINDOW + self.max_lag + TAPS)
        self._caller = _Recent(WINDOW)
        self._played_until: int | None = None
        self._first_lag: int | None = None
        """Delay in samples of the filter's first tap (``None``: the path is not known yet)."""
        self._weights = np.zeros(TAPS, dtype=np.float32)
        """Filter taps, newest reference sample last (so the echo is ``window @ weights``)."""
        self._since_search = SEARCH_EVERY
        self._quiet_line = False
        """The line stayed silent under the agent's voice (:meth:`_check_quiet`)."""
        self._caller_from: int | None = None
        """Sample number of the first caller audio received."""
        self.found_at: float | None = None
        """Audio time the path was first found."""
        self.frames_cleaned = 0
        self._played_samples = 0

    # --- what is known ---------------------------------------------------------------------

    @property
    def delay(self) -> float | None:
        """The echo path's delay in seconds, as measured on this call (``None``: not yet)."""
        if self._first_lag is None:
            return None
        return (self._first_lag + int(np.argmax(np.abs(self._weights[::-1])))) / SAMPLE_RATE

    @property
    def gain_db(self) -> float | None:
        """The echo's level relative to what was played (the echo return loss, negated)."""
        if self._first_lag is None:
            return None
        return 20.0 * float(np.log10(max(float(np.abs(self._weights).max()), 1e-6)))

    @property
    def echoes(self) -> bool | None:
        """Whether this line brings the agent's voice back: True once the path is found, False
        once the agent has talked for a while without one (or the line stayed silent under it:
        :meth:`_check_quiet`), None until then."""
        if self._first_lag is not None:
            return True
        return False if self._quiet_line or self._played_samples >= ABSENT_AFTER else None

    def clear(self) -> None:
        """The call is over: give its signal history back now (see :meth:`AudioTail.clear
        <voiceflow.runtime.audio_tail.AudioTail.clear>`); what it learned stays readable."""
        self._reference = _Recent(1)
        self._caller = _Recent(1)
        self._played_until = None

    def describe(self) -> str:
        if self.delay is None or self.gain_db is None or self.found_at is None:
            return "echo path: none found"
        return f"echo path: {self.delay * 1000:.0f} ms, {self.gain_db:.0f} dB (found at {self.found_at:.2f} s)"

    # --- the two sides -------------------------------------------------------------------------

    def played(self, pcm: bytes, t: float) -> None:
        """The caller heard ``pcm`` (16-bit mono at the internal rate) starting at audio time ``t``."""
        if not pcm:
            return
        at = round(t * SAMPLE_RATE)
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        self._reference.write(at, samples)
        self._played_samples += len(samples)
        end = at + len(samples)
        self._played_until = end if self._played_until is None else max(self._played_until, end)

    def clean(self, frame: AudioFrame) -> AudioFrame:
        """``frame`` with the agent's echo taken out (the same frame when there is none to take)."""
        at = round(frame.t * SAMPLE_RATE)
        mic = np.frombuffer(frame.pcm, dtype=np.int16).astype(np.float32)
        self._caller.write(at, mic)
        if self._caller_from is None:
            self._caller_from = at
        if self._played_until is None or self._played_until + self.max_lag + TAPS <= at:
            return frame  # nothing the agent played can still be on the line
        self._since_search += 1
        unknown = self.echoes is None
        if self._since_search >= (SEARCH_EVERY if unknown else RECHECK_EVERY):
            if _loud(mic):
                self._since_search = 0  # (a quiet moment is skipped: the next frame tries again)
                self._measure(at + len(mic))
            elif unknown and self._since_search % SEARCH_EVERY == 0:
                self._check_quiet(at + len(mic))  # (on its own beat: the searches' is unchanged)
        if self._first_lag is None:
            return frame
        residual = self._subtract(at, mic)
        if residual is None:
            return frame
        self.frames_cleaned += 1
        pcm = np.clip(np.rint(residual), -32768, 32767).astype(np.int16).tobytes()
        return AudioFrame(pcm, frame.t)

    # --- the filter ----------------------------------------------------------------------------

    def _subtract(self, at: int, mic: Signal) -> Signal | None:
        """The caller frame at sample ``at`` less its estimated echo (``None``: leave it as it is)."""
        assert self._first_lag is not None
        lo = at - self._first_lag - TAPS + 1
        ref = self._reference.read(lo, at + len(mic) - self._first_lag)
        power = float(ref @ ref)
        if power <= 0.0:
            return None
        rows = np.lib.stride_tricks.sliding_window_view(ref, TAPS)
        echo = rows @ self._weights
        residual = mic - echo
        left, came, estimated = float(residual @ residual), float(mic @ mic), float(echo @ echo)
        if left < estimated:
            # The frame is mostly the echo the filter predicts: safe to learn from (a caller
            # talking over it would leave more than the echo behind, and must not be learnt).
            self._weights += (STEP / (TAPS * power / len(ref) * len(mic) + 1e-3)) * (rows.T @ residual)
        return residual if left < came else None

    # --- measuring the path ----------------------------------------------------------------

    def _measure(self, end: int) -> None:
        """Find the delay at which the last second of caller audio best matches what was played."""
        mic = self._caller.read(end - WINDOW, end)
        ref = self._reference.read(end - WINDOW - self.max_lag, end)
        if not ref.any():
            return
        coarse = _coarse_lag(mic, ref, self.max_lag)
        if coarse is None:
            return
        lag, gain = _fine_lag(mic, ref, self.max_lag, coarse)
        if lag is None:
            return
        first = max(0, lag - LEAD)
        weights = np.zeros(TAPS, dtype=np.float32)
        weights[TAPS - 1 - (lag - first)] = gain
        if self._first_lag is not None and (
            abs(first - self._first_lag) <= LEAD // 2
            or not self._left(end, first, weights) < 0.5 * self._left(end, self._first_lag, self._weights)
        ):
            # The path is where the filter has it, or the filter explains the echo as well as
            # the new measurement would: keep it (and what it has learnt). A periodic sound
            # correlates almost equally at many delays, and only a path that is clearly better
            # may replace one that works.
            return
        self._first_lag, self._weights = first, weights
        if self.found_at is None:
            self.found_at = end / SAMPLE_RATE

    def _check_quiet(self, end: int) -> None:
        """Note whether the caller's line stayed silent while the agent's echo, if any, was due: over
        the last :data:`WINDOW`, far quieter than every stretch the agent played that its echo
        could come from (each delay up to ``max_lag``, in frame steps): an echo at the true delay
        would have brought its gain squared times that stretch's energy into the window. A quiet
        line proves its echo weak within about half a second of agent speech, where waiting for
        :data:`ABSENT_AFTER` takes two and, meanwhile, a caller talking over the agent is
        searched for a path every 60 ms."""
        if self._caller_from is None or end - WINDOW < self._caller_from:
            return  # not a whole window of the caller's line yet: nothing heard is not silence
        mic = self._caller.read(end - WINDOW, end)
        ref = self._reference.read(end - WINDOW - self.max_lag, end).astype(np.float64)
        frames = len(ref) // FRAME_SAMPLES
        per_frame = np.square(ref[len(ref) - frames * FRAME_SAMPLES :]).reshape(frames, FRAME_SAMPLES).sum(axis=1)
        span = WINDOW // FRAME_SAMPLES
        running = np.concatenate([[0.0], np.cumsum(per_frame)])
        least = float((running[span:] - running[:-span]).min())
        if least >= LOUD_ENOUGH * LOUD_ENOUGH * WINDOW and float(mic @ mic) < least * 10.0 ** (QUIET_BELOW_DB / 10.0):
            self._quiet_line = True

    def _left(self, end: int, first_lag: int, weights: Signal) -> float:
        """Energy left in the last second of caller audio after the filter ``weights`` from
        ``first_lag`` took its echo out."""
        mic = self._caller.read(end - WINDOW, end)
        ref = self._reference.read(end - WINDOW - first_lag - TAPS + 1, end - first_lag)
        residual = mic - np.lib.stride_tricks.sliding_window_view(ref, TAPS) @ weights
        return float(residual @ residual)


def _loud(frame: Signal) -> bool:
    return float(frame @ frame) >= MIN_LEVEL * MIN_LEVEL * len(frame)


def _coarse_lag(mic: Signal, ref: Signal, max_lag: int) -> int | None:
    """The lag (samples, in ``ref`` from ``mic``'s start: ``max_lag`` minus the delay) whose
    normalised correlation peaks, searched at a quarter rate; ``None`` if no lag correlates."""
    m, r = _decimated(mic), _decimated(ref)
    # Only lags 0..max_lag are wanted, each reading m against r[k : k + len(m)] inside r: a
    # circular correlation as long as r has no wrap-around there (half the FFT of a full one).
    size = 1 << int(np.ceil(np.log2(len(r))))
    corr = np.fft.irfft(np.conj(np.fft.rfft(m, size)) * np.fft.rfft(r, size), size)
    lags = max_lag // DECIMATE + 1
    squares = np.concatenate([[0.0], np.cumsum(r.astype(np.float64) ** 2)])
    ref_energy = squares[len(m) : len(m) + lags] - squares[:lags]
    # Delays whose stretch of reference is (almost) silent say nothing, and their energy, a
    # difference of two running sums, can be rounding noise that would make any score huge.
    heard = ref_energy > max(1e-6 * float(ref_energy.max()), float(len(m)))
    score = np.where(heard, corr[:lags] / np.sqrt(float(m @ m) * np.maximum(ref_energy, 1.0)), 0.0)
    best = int(np.argmax(np.abs(score)))
    if abs(float(score[best])) < MIN_CORRELATION:
        return None
    return best * DECIMATE


def _decimated(x: Signal) -> Signal:
    """Sums of :data:`DECIMATE` samples: a crude low-pass and down-sampling in one (strided
    adds are several times cheaper than a reshape and a mean)."""
    x = x[: len(x) // DECIMATE * DECIMATE]
    out = x[0::DECIMATE].copy()
    for k in range(1, DECIMATE):
        out += x[k::DECIMATE]
    return out


def _fine_lag(mic: Signal, ref: Signal, max_lag: int, coarse: int) -> tuple[int | None, float]:
    """Around the coarse lag, at the full rate: (the delay in samples, the echo's gain)."""
    best, best_score, best_gain = None, 0.0, 0.0
    mic_energy = float(mic @ mic)
    for lag in range(max(0, coarse - DECIMATE), min(max_lag, coarse + DECIMATE) + 1):
        window = ref[lag : lag + len(mic)]
        energy = float(window @ window)
        if energy <= 0.0:
            continue
        dot = float(mic @ window)
        score = abs(dot) / np.sqrt(mic_energy * energy)
        if score > best_score:
            best, best_score, best_gain = lag, score, dot / energy
    if best is None or best_score < MIN_CORRELATION:
        return None, 0.0
    return max_lag - best, best_gain
