"""A call's voice-activity detection: the VAD chain behind one per-frame call.

``aprocess`` is awaited for every 20 ms frame. A detector runs its model inline or, if it is
heavy like Silero, in a worker thread (gathered across calls); either way it answers within a
frame unless the whole process is overloaded, which a deadline could not mend, so none guards it.
What can go wrong is an exception (a model that breaks on odd input, a plugin bug). Then the next
VAD of the chain takes over with a fresh stream from the next frame on. An open speech segment is
carried over as a speech-end edge at the last voiced time the failed stream reported, so the turn
manager is never left waiting for the end of a segment no detector knows about. When no VAD is
left, :class:`StageFailed` tells the session the call cannot go on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import structlog

from voiceflow.clock import Clock
from voiceflow.frames import AudioFrame, VADEvent, VADKind
from voiceflow.providers import VADProvider, VADStream
from voiceflow.redaction import redact
from voiceflow.runtime.chain import AttemptRecord, StageFailed

log = structlog.get_logger("voiceflow.vad")


class VoiceActivity:
    def __init__(self, providers: Sequence[VADProvider[Any]], clock: Clock) -> None:
        self._providers = list(providers)
        self._clock = clock
        self._index = -1
        self._stream: VADStream | None = None
        self._attempts: list[AttemptRecord] = []
        self.heard_until = float("-inf")
        """Audio time just after the newest caller frame processed: how far the detector has
        heard, whatever the transport's delivery delay (a jitter buffer holds audio back)."""
        self.heard_at = clock.now()
        """Clock time the newest caller frame arrived (from the call's start until the first):
        how long the line has delivered nothing (see :mod:`voiceflow.turns.late_audio`)."""
        self.onset: float | None = None
        """Set by the frame in which the caller's voice began a stretch the detector has not yet
        called speech (its audio time), else None: see :meth:`aprocess`."""
        self._voiced_before = float("-inf")
        self._next_stream(0.0)

    @property
    def available(self) -> bool:
        return self._stream is not None

    @property
    def voiced_until(self) -> float:
        return self._stream.voiced_until if self._stream is not None else float("-inf")

    @property
    def speaking(self) -> bool:
        return self._stream.speaking if self._stream is not None else False

    async def aprocess(self, frame: AudioFrame) -> VADEvent | None:
        """One caller frame through the current detector; an edge if speech started or ended.

        Also notes a voice *onset* in :attr:`onset`: the detector judged this frame voiced
        after at least :data:`VOICE_GAP` of quiet, but has not declared speech (it waits for
        its ``start_secs`` first, so that a click is not a turn). A reply can go quiet at the
        onset and so stop a start window sooner for a caller who cuts in, at the cost of a
        moment's silence when it was a click (see :mod:`voiceflow.turns.overlap_watch`).
        Detectors that only report :attr:`speaking` never give one."""
        self.heard_until = max(self.heard_until, frame.t + frame.duration)
        self.heard_at = self._clock.now()
        self.onset = None
        while self._stream is not None:
            stream = self._stream
            try:
                edge = _checked(await stream.aprocess(frame), frame.t + frame.duration)
                voiced = stream.voiced_until
                if (edge is None and voiced > self._voiced_before and not stream.speaking
                        and self._voiced_before < frame.t - VOICE_GAP):
                    self.onset = frame.t
                self._voiced_before = voiced
                return edge
            except Exception as exc:  # noqa: BLE001 - the next VAD takes over
                carried = self._fail(stream, exc, frame.t)
                if carried is not None:
                    return carried
        raise StageFailed("vad", self._attempts)

    def finish(self, t: float) -> VADEvent | None:
        """The caller's audio ended at ``t``: an open segment ends (the end of input is an endpoint)."""
        stream = self._stream
        if stream is None:
            return None
        try:
            return _checked(stream.finish(t), t)
        except Exception as exc:  # noqa: BLE001
            return self._fail(stream, exc, t)

    def _fail(self, stream: VADStream, exc: Exception, t: float) -> VADEvent | None:
        name = self._providers[self._index].name
        error = redact(f"{type(exc).__name__}: {exc}")
        self._attempts.append(AttemptRecord("vad", name, t, None, error))
        log.error("voice activity detector failed, using the next", provider=name, error=error)
        was_speaking = _safely(lambda: stream.speaking, False)
        voiced_until = _safely(lambda: stream.voiced_until, t)
        self._next_stream(t)
        if was_speaking:
            return VADEvent(VADKind.SPEECH_END, min(voiced_until, t), t)
        return None

    def _next_stream(self, t: float) -> None:
        self._stream = None
        while self._index + 1 < len(self._providers):
            self._index += 1
            provider = self._providers[self._index]
            try:
                self._stream = provider.create_stream()
                return
            except Exception as exc:  # noqa: BLE001
                error = redact(f"{type(exc).__name__}: {exc}")
                self._attempts.append(AttemptRecord("vad", provider.name, t, None, error))
                log.error("voice activity detector could not start", provider=provider.name, error=error)


VOICE_GAP = 0.07
"""Seconds without a voiced frame after which the caller counts as having stopped (and a voiced
frame after them as a new onset): a detector window (Silero's is 32 ms) plus a frame of
hand-off, with a little slack. Barge-in judges by the same gap."""

SLACK = 0.001
"""Rounding allowed when an edge is compared with the audio it was found in."""


def _checked(edge: object, audio_end: float) -> VADEvent | None:
    """An edge the turn manager can use, or a failure of the detector. A time that is not
    finite, or after the audio the detector has been given, would set an endpoint timer that
    fires late or never: the turn would stall."""
    if edge is None:
        return None
    if not isinstance(edge, VADEvent) or not isinstance(edge.kind, VADKind):
        raise TypeError(f"process() returned {type(edge).__name__}, not a VADEvent")
    if not (math.isfinite(edge.t) and math.isfinite(edge.detected_at)):
        raise ValueError(f"process() returned an edge at a time that is not finite ({edge.t!r})")
    if edge.t > audio_end + SLACK:
        raise ValueError(f"process() returned an edge at {edge.t:.3f} s, after the audio it was given "
                         f"(which ends at {audio_end:.3f} s)")
    return edge


def _safely(read: Any, default: Any) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - the stream is already known to be broken
        return default
