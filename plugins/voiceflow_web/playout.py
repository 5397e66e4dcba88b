"""Which agent audio the listener has heard, from the page's playback reports.

The page cannot see our marks, but it can see RTP timestamps: the browser says which one it is
playing out right now (``RTCRtpReceiver.getSynchronizationSources()``), and a receive transform
sees the timestamp of the first packet that arrived. The server knows that packet was frame 0 of
its track (nothing is sent before the page says it can hear), and that every frame after it
advances the timestamp by exactly 20 ms of Opus's 48 kHz clock. So a report "RTP timestamp r was
playing 12 ms ago" names a frame of ours and when it was heard: the ledger acknowledges every mark
up to it. That is the listener's ear, jitter buffer and network included, rather than a guess from
when the audio was sent; a stalled network stalls the marks, as it stalls the listener.

Why not the other signals a browser offers: ``estimatedPlayoutTimestamp`` needs a round-trip
time a receive-only stream does not have (Chromium reports none against aiortc), and jitter
buffer statistics give an average delay, not what was played.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from voiceflow.frames import FRAME_SECONDS
from voiceflow.providers import PlayedCallback
from voiceflow_web.protocol import RTP_MODULO

RTP_PER_FRAME = 960
"""Opus's RTP clock is 48 kHz whatever the audio's rate: 960 ticks per 20 ms frame."""


@dataclass(frozen=True, slots=True)
class _Sent:
    index: int
    mark: object


class PlayoutLedger:
    """The marks of frames sent on the agent's track, until the page has played them.

    Without playback reports (a browser lacking the receive transform), each frame counts as
    heard when it is sent: the barge-in cut is then late by the network and the jitter buffer.
    """

    def __init__(self) -> None:
        self._played: PlayedCallback = lambda mark, t: None
        self.reported = True
        """Whether the page reports playback (it says so in ``hello``)."""
        self._pending: deque[_Sent] = deque()
        self._anchor: int | None = None
        self._sent = 0
        self._heard_through = -1

    def on_played(self, callback: PlayedCallback) -> None:
        self._played = callback

    @property
    def sent(self) -> int:
        """Frames sent so far (silence included): the next frame's index."""
        return self._sent

    def send(self, mark: object | None, t: float) -> int:
        """Frame number :attr:`sent` leaves now (``t``); returns its index."""
        index = self._sent
        self._sent += 1
        if mark is not None:
            if self.reported:
                self._pending.append(_Sent(index, mark))
            else:
                self._played(mark, t)
        return index

    def anchor(self, rtp: int) -> None:
        """The first packet of the track carried this RTP timestamp."""
        if self._anchor is None:
            self._anchor = rtp

    def report(self, rtp: int, t: float) -> None:
        """The frame with RTP timestamp ``rtp`` was being played at ``t``: it and everything
        before it has been heard."""
        if self._anchor is None or not self._sent:
            return
        index = (rtp - self._anchor) % RTP_MODULO // RTP_PER_FRAME
        if index >= self._sent or index <= self._heard_through:
            return  # not sent yet (a wrong anchor), or nothing new
        self._heard_through = index
        while self._pending and self._pending[0].index <= index:
            sent = self._pending.popleft()
            self._played(sent.mark, t - (index - sent.index) * FRAME_SECONDS)
