"""The caller audio sent on one Deepgram socket: where it sits in time, and what is not in a final.

Deepgram stamps its results in *socket time*: seconds of audio since the socket opened. The turn
manager needs *audio time* on the session clock (``Transcript.end``, word times), so each frame's
session stamp is kept where the mapping changes: at the first frame, and wherever frames are not
back to back (audio the recogniser dropped, a gap in the caller's line). Between two such anchors
socket time and audio time advance together.

The frames not yet covered by a final are kept too (bounded by ``max_seconds``): if the socket
drops, they are sent again on the new one, so a drop costs no words. Deepgram's finals cover
contiguous windows (``start`` + ``duration``), so a final tells exactly which frames are done.
"""

from __future__ import annotations

from collections import deque

from voiceflow.frames import AudioFrame

GAP_TOLERANCE = 0.001
"""Frames closer than this to back to back are taken as contiguous (stamps are floats)."""
MAX_ANCHORS = 1024
"""Anchors kept at most: a caller stream full of gaps must not grow without bound."""


class SocketAudio:
    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.sent = 0.0
        """Seconds of audio sent on the current socket."""
        self.dropped = 0.0
        """Seconds of unfinalized audio forgotten because they exceeded ``max_seconds``."""
        self._anchors: deque[tuple[float, float]] = deque(maxlen=MAX_ANCHORS)
        self._pending: deque[tuple[float, AudioFrame]] = deque()
        self._pending_seconds = 0.0
        self._next_t: float | None = None
        self._end: float | None = None

    def add(self, frame: AudioFrame) -> None:
        """``frame`` is being sent on the current socket."""
        if self._next_t is None or abs(frame.t - self._next_t) > GAP_TOLERANCE:
            self._anchors.append((self.sent, frame.t))
        self._next_t = self._end = frame.t + frame.duration
        self._pending.append((self.sent, frame))
        self._pending_seconds += frame.duration
        self.sent += frame.duration
        while self._pending and self._pending_seconds > self.max_seconds:
            _, old = self._pending.popleft()
            self._pending_seconds -= old.duration
            self.dropped += old.duration

    def covered(self, until: float) -> None:
        """A final covers socket time up to ``until``: its frames need no replay."""
        while self._pending and self._pending[0][0] + self._pending[0][1].duration <= until + GAP_TOLERANCE:
            _, done = self._pending.popleft()
            self._pending_seconds -= done.duration

    def audio_time(self, socket_time: float) -> float | None:
        """Session audio time of a point in socket time (None before any audio)."""
        for anchor_socket, anchor_audio in reversed(self._anchors):
            if anchor_socket <= socket_time + GAP_TOLERANCE:
                return anchor_audio + (socket_time - anchor_socket)
        if self._anchors:
            anchor_socket, anchor_audio = self._anchors[0]
            return anchor_audio + (socket_time - anchor_socket)
        return None

    def end_time(self) -> float | None:
        """Audio time just after the last frame sent (on this socket or an earlier one)."""
        return self._end

    @property
    def pending_seconds(self) -> float:
        return self._pending_seconds

    def restart(self) -> list[AudioFrame]:
        """A new socket: socket time starts again at zero. Returns the frames to send again, which
        the caller re-adds with :meth:`add` as it sends them."""
        frames = [frame for _, frame in self._pending]
        self._pending.clear()
        self._pending_seconds = 0.0
        self._anchors.clear()
        self._next_t = None
        self.sent = 0.0
        return frames
