"""Per-call Silero state: window buffering, recurrent state and the speech/silence hysteresis.

Silero scores 512-sample (32 ms) windows, each preceded by the last 64 samples of the previous
window as context, while the runtime delivers 20 ms (320-sample) frames. The stream therefore
fills one preallocated ``(1, 576)`` float32 array in place and runs the model whenever its 512 new
samples are complete: at most once per frame, because a frame is shorter than a window. Nothing is
allocated per frame beyond numpy views and onnxruntime's small outputs.

**Where the model runs.** :meth:`~SileroStream.aprocess`, the session's path, hands each completed
window to the provider's :class:`~voiceflow_silero.batcher.ThreadBatcher`, which scores every
call's windows of the same instant in a worker thread: the event loop only copies samples and
runs the hysteresis. :meth:`~SileroStream.process` runs the model inline, for callers without an
event loop; both give identical results.

**The end of speech, on time.** Silero's recurrent state makes the probability lag the audio: the
window just after the last word still scores high (0.7–0.9), so the first quiet window starts
30–60 ms after the caller stopped. And a stop window counted in whole model windows rounds
200 ms up to 224 ms, decided only when a window completes. Both would be added to every turn.
So the edge is placed by the audio's energy within the last :data:`KEPT_WINDOWS` windows before
the quiet one (the end of the last 8 ms block within :data:`TAIL_DB` of the caller's loudest), and
the end is declared on the first *frame* at which ``stop_secs`` have passed since that edge, the
latest window being quiet.

"The caller's loudest" is the loudest voiced block of the call so far, fading by
:data:`PEAK_FADE_DB` at each segment's end, not that of the current segment alone: a last word
said softer than the first ("five *five*") would otherwise measure its own breathy tail as loud.
The fade lets a one-off cough stop setting the level after a few turns. On Debian's
pocketsphinx-testdata recordings this puts the edge within a window of the last voiced sample
(the last 10 ms within 25 dB of the recording's loudest) where Silero's own lag put it 40-80 ms
after; a tail with real bursts of breath above that level (cards/003) still ends after them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from voiceflow.clock import current_clock
from voiceflow.frames import SAMPLE_RATE, AudioFrame, VADEvent, VADKind
from voiceflow.providers import ProviderError, VADStream
from voiceflow_silero.batcher import ThreadBatcher
from voiceflow_silero.scoring import Window, score

WINDOW = 512
"""New samples per model call (the only size Silero accepts at 16 kHz)."""
CONTEXT = 64
"""Samples of the previous window prepended to each call."""
WINDOW_SECONDS = WINDOW / SAMPLE_RATE
HYSTERESIS = 0.15
"""Speech ends below ``threshold - HYSTERESIS`` (Silero's own recommendation)."""
BLOCK = 128
"""Samples per energy block (8 ms): four per window, to place the end of speech inside one."""
TAIL_DB = 25.0
"""A block this far below the caller's loudest counts as silence when placing the end."""
KEPT_WINDOWS = 4
"""How far back (in windows, 128 ms) the end may be placed before the first quiet window: Silero
scores up to three windows of a decaying tail as speech."""
PEAK_FADE_DB = 1.0
"""The caller's loudest level fades this much at the end of each speech segment."""
_TAIL = 10.0 ** (-TAIL_DB / 10.0)
_PEAK_FADE = 10.0 ** (-PEAK_FADE_DB / 10.0)
_BLOCKS_PER_WINDOW = WINDOW // BLOCK
_BLOCKS_KEPT = KEPT_WINDOWS * _BLOCKS_PER_WINDOW
_BLOCK_BEFORE_END = np.arange(_BLOCKS_PER_WINDOW)[::-1] * BLOCK / SAMPLE_RATE
"""How long before its window's end each block ends (the last block ends with the window)."""
_SCALE = np.float32(1.0 / 32768.0)
_EPS = 1e-6  # float slack when comparing accumulated window durations with the config seconds


class SileroStream(VADStream):
    """One call's VAD: feed 20 ms frames to :meth:`aprocess` (or :meth:`process`, which runs the
    model on the calling thread), get speech start/end edges back."""

    def __init__(
        self,
        session: Any,
        *,
        threshold: float,
        start_secs: float,
        stop_secs: float,
        batcher: ThreadBatcher[Window] | None = None,
    ) -> None:
        self._session = session
        self._batcher = batcher
        self._lost_window = False
        self._buf = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        state = np.zeros((1, 1, 128), dtype=np.float32)
        self._feeds: dict[str, np.ndarray] = {"input": self._buf, "h": state, "c": state.copy()}
        self._fill = 0
        self._win_t = 0.0
        self._threshold = threshold
        self._neg_threshold = max(threshold - HYSTERESIS, 0.01)
        self._start_secs = start_secs
        self._stop_secs = stop_secs
        self._speaking = False
        self._run_start: float | None = None
        self._silence_start: float | None = None
        self._edge = 0.0
        self._voiced_until = float("-inf")
        self._energy = np.zeros(_BLOCKS_KEPT, dtype=np.float32)
        """Energy (sum of squares) of the last KEPT_WINDOWS windows' 8 ms blocks, oldest first."""
        self._window_ends = np.full(KEPT_WINDOWS, -np.inf)
        """Audio time at the end of each of those windows (frames need not be contiguous)."""
        self._peak = 0.0
        """The loudest voiced block's energy in this call (fading by PEAK_FADE_DB a segment)."""
        self.last_prob = 0.0
        """Speech probability of the most recent window (for meters and debugging)."""

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def voiced_until(self) -> float:
        return self._voiced_until

    def process(self, frame: AudioFrame) -> VADEvent | None:
        self._check_usable()
        event: VADEvent | None = None
        for win_start, win_end in self._windows(frame):
            event = self._scored(score(self._session, self._feeds), win_start, win_end, frame) or event
        return self._settled(frame, event)

    async def aprocess(self, frame: AudioFrame) -> VADEvent | None:
        """Like :meth:`process`, the model run by the provider's batcher in a worker thread
        together with the other calls' windows of the same instant; identical results."""
        if self._batcher is None:
            return self.process(frame)
        self._check_usable()
        event: VADEvent | None = None
        for win_start, win_end in self._windows(frame):
            prob = await self._score_off_loop(self._batcher)
            event = self._scored(prob, win_start, win_end, frame) or event
        return self._settled(frame, event)

    def _check_usable(self) -> None:
        if self._lost_window:
            raise ProviderError("silero: this stream lost a window to a cancelled call (its state is "
                                "no longer exact); create a new stream")

    def _windows(self, frame: AudioFrame) -> Iterator[tuple[float, float]]:
        """Copy the frame into the window buffer; at each completed window, measure its energy
        and yield its (start, end) audio time. The consumer scores it before the next is filled."""
        samples = np.frombuffer(frame.pcm, dtype="<i2")
        n = samples.shape[0]
        pos = 0
        while pos < n:
            if self._fill == 0:
                self._win_t = frame.t + pos / SAMPLE_RATE
            take = min(WINDOW - self._fill, n - pos)
            start = CONTEXT + self._fill
            np.multiply(samples[pos : pos + take], _SCALE, out=self._buf[0, start : start + take])
            self._fill += take
            pos += take
            if self._fill == WINDOW:
                self._fill = 0
                end_t = frame.t + pos / SAMPLE_RATE
                self._measure(end_t)
                yield self._win_t, end_t

    async def _score_off_loop(self, batcher: ThreadBatcher[Window]) -> float:
        """The window scored in the batcher's worker thread; the clock counts the wait as work.
        Cancelled meanwhile, the window's result is lost, and with it the stream's exactness."""
        window = Window(self._feeds)
        try:
            with current_clock().busy():
                await batcher.submit(window)
        except BaseException:
            self._lost_window = True
            raise
        if window.error is not None:
            raise window.error
        return window.prob

    def _scored(self, prob: float, win_start: float, win_end: float, frame: AudioFrame) -> VADEvent | None:
        """A window's probability is in (its state already carried): shift the 64-sample
        context forward and run the hysteresis."""
        self._buf[0, :CONTEXT] = self._buf[0, WINDOW:]
        self.last_prob = prob
        return self._update(prob, win_start, win_end, frame.t + frame.duration)

    def _settled(self, frame: AudioFrame, event: VADEvent | None) -> VADEvent | None:
        """Without a window edge, a pending start or end may still fall due on this frame."""
        if event is None:
            now = frame.t + frame.duration
            if self._speaking and self._silence_start is not None:
                event = self._maybe_end(now)
            elif not self._speaking and self._run_start is not None:
                event = self._maybe_start(now)
        return event

    def _measure(self, end_t: float) -> None:
        """Energy of the window's 8 ms blocks (before the context shift overwrites its head),
        kept in place in fixed arrays: this runs for every window of every call."""
        self._energy[:-_BLOCKS_PER_WINDOW] = self._energy[_BLOCKS_PER_WINDOW:]
        blocks = self._buf[0, CONTEXT:].reshape(_BLOCKS_PER_WINDOW, BLOCK)
        np.einsum("ij,ij->i", blocks, blocks, out=self._energy[-_BLOCKS_PER_WINDOW:])
        self._window_ends[:-1] = self._window_ends[1:]
        self._window_ends[-1] = end_t

    def _update(self, prob: float, win_start: float, win_end: float, now: float) -> VADEvent | None:
        """Hysteresis over window probabilities; edges carry the audio time of the edge itself."""
        if prob >= (self._neg_threshold if self._speaking else self._threshold):
            self._voiced_until = win_end
            self._peak = max(self._peak, float(self._energy[-_BLOCKS_PER_WINDOW:].max()))
        if not self._speaking:
            if prob < self._threshold:
                self._run_start = None
                return None
            if self._run_start is None:
                self._run_start = win_start
            return self._maybe_start(now)
        if prob >= self._neg_threshold:
            self._silence_start = None
            return None
        if self._silence_start is None:
            self._silence_start = win_start
            self._edge = self._place_edge(win_start)
        return self._maybe_end(now)

    def _place_edge(self, quiet_from: float) -> float:
        """Where the speech really ended: the end of the last loud block of the windows kept
        before the first quiet one (Silero's lag), never later than that window's start."""
        floor = self._peak * _TAIL
        ends = (self._window_ends[:, None] - _BLOCK_BEFORE_END[None, :]).ravel()
        loud = np.flatnonzero((ends <= quiet_from + _EPS) & (self._energy >= floor))
        earliest = quiet_from - KEPT_WINDOWS * WINDOW_SECONDS
        return max(min(float(ends[loud[-1]]), quiet_from), earliest) if len(loud) else earliest

    def _maybe_start(self, now: float) -> VADEvent | None:
        """Declare the start once ``start_secs`` have passed since the run's first voiced window
        (frame by frame, the latest window voiced), not at the next window: counted in whole
        windows, 0.1 s would take four (128 ms), and every barge-in would wait for it."""
        assert self._run_start is not None
        if now - self._run_start + _EPS < self._start_secs:
            return None
        self._speaking, self._silence_start = True, None
        return VADEvent(VADKind.SPEECH_START, self._run_start, now)

    def _maybe_end(self, now: float) -> VADEvent | None:
        """Declare the end once ``stop_secs`` have passed since the edge (frame by frame)."""
        if now - self._edge + _EPS < self._stop_secs:
            return None
        self._speaking, self._run_start, self._silence_start, self._peak = False, None, None, self._peak * _PEAK_FADE
        return VADEvent(VADKind.SPEECH_END, self._edge, now)
