"""The soak's callers: a real recording said at real time over the WebSocket API, and what each
call came to (completed, refused, dropped; every turn's mouth-to-ear as the caller heard it).
Each call is a :class:`voiceflow.testing.ws_caller.WsCaller`; this module scripts it and reads
its report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

from voiceflow.audio import read_wav
from voiceflow.testing.ws_caller import FRAME_SECONDS, CallReport, Cue, WsCaller

RATE = 16_000
RECORDING = Path("/usr/share/pocketsphinx/test/data/goforward.raw")
NORMAL_HANGUPS = {"caller hung up": "completed", "goodbye": "agent_hung_up"}


# --- the caller's voice -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    pcm: bytes
    speech_end: float
    """Seconds from the start to the end of the last voiced 10 ms window."""

    @property
    def frames(self) -> int:
        return -(-len(self.pcm) // (2 * int(RATE * FRAME_SECONDS)))


def load_recording(path: Path) -> Recording:
    """A recording (16 kHz PCM16 ``.raw``, or any WAV) and where its speech ends: the last 10 ms
    window whose energy above 150 Hz is at least 20 dB over the recording's noise floor (its
    quietest tenth). Below 150 Hz there is no speech, only rumble: goforward.raw has 0.26 s of
    it after the final "s", which a plain level would count as speech."""
    pcm = path.read_bytes() if path.suffix == ".raw" else read_wav(path, RATE)
    spectrum = np.fft.rfft(np.frombuffer(pcm, dtype="<i2").astype(np.float64))
    spectrum[np.fft.rfftfreq(len(pcm) // 2, 1 / RATE) < 150] = 0
    samples = np.fft.irfft(spectrum, len(pcm) // 2)
    window = RATE // 100
    count = len(samples) // window
    if count < 10:
        raise SystemExit(f"{path}: {len(samples) / RATE:.2f} s of audio; a caller needs a sentence")
    level = 10 * np.log10((samples[: count * window].reshape(count, window) ** 2).mean(axis=1) + 1e-3)
    voiced = np.flatnonzero(level >= np.percentile(level, 10) + 20)
    if not len(voiced):
        raise SystemExit(f"{path}: no speech found (nothing 20 dB above its noise floor)")
    return Recording(pcm, (voiced[-1] + 1) * window / RATE)


# --- one call -----------------------------------------------------------------------------------


class Dialogue:
    """One call's script, and the times the caller spoke.

    WsCaller sends a frame every 20 ms on a fixed schedule from the moment the socket opened
    (report time 0): silence while a cue's ``when`` is false (it asks once before each such
    frame), then the cue's audio. So counting the answers gives each line's first frame, and the
    frame's time its place on the report's clock: frame k carries the 20 ms that end at
    k × 20 ms, as a microphone delivers them. That is the caller's mouth, whatever the network or
    the server do with the frames.

    The predicates run 50 times a second per caller, so they read only the events that came
    since they last looked (a call's events grow by a mark per 20 ms of agent audio; scanning
    them all each time cost the 200 callers more CPU than the server)."""

    def __init__(self, turns: int, recording: Recording) -> None:
        self.turns, self.recording = turns, recording
        self.frames_sent = 0
        self.line_starts: list[float] = []
        """Report time of each line's first sample."""
        self.greeted = False
        self.replies = 0
        self._read = 0

    def cues(self) -> list[Cue]:
        return [Cue(self.recording.pcm, when=self._after(replies)) for replies in range(self.turns)]

    def hang_up_when(self, report: CallReport) -> bool:
        self._catch_up(report)
        return self.replies >= self.turns

    def _catch_up(self, report: CallReport) -> None:
        for _, event in report.events[self._read :]:
            if event.get("type") == "turn" and event.get("event") == "ended":
                self.greeted |= event.get("kind") == "greeting"
                self.replies += event.get("kind") == "reply"
        self._read = len(report.events)

    def _after(self, replies: int) -> Callable[[CallReport], bool]:
        def ready(report: CallReport) -> bool:
            self._catch_up(report)
            if not (self.greeted and self.replies >= replies):
                self.frames_sent += 1
                return False
            self.line_starts.append((self.frames_sent - 1) * FRAME_SECONDS)
            self.frames_sent += self.recording.frames
            return True

        return ready


@dataclass
class Turn:
    at: float
    """Soak time at which the caller stopped speaking."""
    heard_ms: float | None
    """Mouth-to-ear as the caller heard it: end of its speech → first agent audio received."""
    server_ms: float | None
    """Mouth-to-ear as the server measured it (its VAD's last voiced sample → audio acknowledged)."""
    outcome: str


@dataclass
class CallRecord:
    slot: int
    started: float
    ended: float
    status: str
    """``completed`` (the caller hung up), ``agent_hung_up``, ``refused``, ``dropped``, or
    ``unfinished`` (hung up by the soak's end)."""
    reason: str = ""
    turns: list[Turn] = field(default_factory=list)


def turns_of(report: CallReport, dialogue: Dialogue, opened: float) -> list[Turn]:
    """Each line the caller said, with the first agent audio that came after it."""
    replies = report.turns_ended("reply")
    starts = [segment.start for segment in report.segments]
    turns = []
    for index, start in enumerate(dialogue.line_starts):
        end = start + dialogue.recording.speech_end
        before = dialogue.line_starts[index + 1] if index + 1 < len(dialogue.line_starts) else float("inf")
        answer = min((s for s in starts if end < s < before), default=None)
        reply = replies[index] if index < len(replies) else None
        turns.append(Turn(
            opened + end,
            1000 * (answer - end) if answer is not None else None,
            reply.get("mouth_to_ear_ms") if reply else None,
            reply["outcome"] if reply else "none",
        ))
    return turns


def classify(report: CallReport, failure: str | None) -> tuple[str, str]:
    """(status, reason) of a call from what its caller saw."""
    error = report.error
    if report.started is None:
        why = failure or (f"{error['code']}: {error.get('message', '')}" if error else f"closed {report.close_code}")
        return "refused", why
    if failure is not None:
        return "dropped", failure
    if error is not None:
        return "dropped", f"error {error['code']}: {error.get('message', '')}"
    hangup = report.hangup
    if hangup is None:
        return "dropped", f"closed {report.close_code} without a hangup"
    status = NORMAL_HANGUPS.get(str(hangup.get("reason")))
    if status is None:
        return "dropped", f"hangup: {hangup.get('reason')}"
    if report.close_code != 1000:
        return "dropped", f"hangup then close {report.close_code}"
    return status, ""


async def one_call(
    url: str, slot: int, turns: int, recording: Recording, t0: float, limit: float, over: anyio.Event
) -> CallRecord:
    """Make one call; ``over`` set means the soak is over and the call is hung up where it is
    (``unfinished``: a server that keeps up has none)."""
    dialogue = Dialogue(turns, recording)
    caller = WsCaller(url, dialogue.cues(), hang_up_when=dialogue.hang_up_when, max_seconds=limit)
    opened = anyio.current_time() - t0
    failure: str | None = None
    cut = False

    async def hang_up_at_the_end(scope: anyio.CancelScope) -> None:
        nonlocal cut
        await over.wait()
        cut = True
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hang_up_at_the_end, tg.cancel_scope)
        with anyio.move_on_after(limit + 10) as scope:
            try:
                await caller.run()
            except Exception as exc:  # noqa: BLE001 - a failed call is a figure, not the soak's end
                failure = f"{type(exc).__name__}: {exc}"
        tg.cancel_scope.cancel()
    if scope.cancelled_caught:
        failure = f"no end after {limit + 10:.0f} s"
    status, reason = classify(caller.report, failure)
    if cut:
        status, reason = "unfinished", "still going when the soak ended"
    return CallRecord(slot, opened, anyio.current_time() - t0, status, reason,
                      turns_of(caller.report, dialogue, opened))
