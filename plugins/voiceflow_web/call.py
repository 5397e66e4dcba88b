"""One browser call as the runtime sees it (a :class:`~voiceflow.providers.CallTransport`).

Caller audio comes from the page's microphone track; agent audio goes out on
:class:`~voiceflow_web.agent_track.AgentTrack`; playback marks come back from the page's reports
through :class:`~voiceflow_web.playout.PlayoutLedger`; session events go to the page over the
data channel. The signalling socket and the peer connection are the endpoint's business: this
class only hears from it that the caller has gone (:meth:`hang_up`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame as AVFrame

from voiceflow.clock import current_clock
from voiceflow.frame_queue import FrameQueue
from voiceflow.frames import FRAME_SECONDS, AudioFrame
from voiceflow.providers import CallTransport, OutFrame, PlayedCallback
from voiceflow.serving.api import CloseCode, ServingLimits, watch_idle
from voiceflow_web.agent_track import AgentTrack
from voiceflow_web.caller_audio import CallerAudio
from voiceflow_web.config import WebConfig
from voiceflow_web.peer import Peer
from voiceflow_web.playout import PlayoutLedger
from voiceflow_web.protocol import (
    Anchor,
    Hello,
    Played,
    ProtocolError,
    message,
    parse_page,
    session_event,
)

log = structlog.get_logger("voiceflow.web")

CALLER_BUFFER_FRAMES = 50
"""Caller frames waiting for the VAD (1 s); beyond it the track is read no faster."""


class WebCall(CallTransport):
    caller_audio_end_is_hangup = True

    def __init__(self, config: WebConfig, limits: ServingLimits, call_id: str) -> None:
        self.call_id = call_id
        self.clock = "real"
        self.failure: ProtocolError | None = None
        """Why the page's side broke the call (reported to it in ``error``), if it did."""
        self._limits = limits
        self._clock = current_clock()
        self._ledger = PlayoutLedger()
        self.track = AgentTrack(self._clock, self._ledger, max(2, math.ceil(config.buffer / FRAME_SECONDS)))
        self.peer = Peer(config.ice_servers, self._message, lambda: self.hang_up())
        self._frames = FrameQueue[AudioFrame](CALLER_BUFFER_FRAMES)
        self._connected = anyio.Event()
        self._over = False

    # --- CallTransport ------------------------------------------------------------------------

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        async for frame in self._frames:
            yield frame

    async def play(self, out: OutFrame) -> None:
        await self.track.play(out)

    def flush(self) -> None:
        self.track.flush()
        self.peer.send(message("clear"))

    def pause(self) -> bool:
        self.track.pause()
        return True

    def resume(self) -> None:
        self.track.resume()

    def on_played(self, callback: PlayedCallback) -> None:
        self._ledger.on_played(callback)

    def notify(self, event: str, **data: Any) -> None:
        if event == "hangup":
            self._over = True
        text = session_event(event, data)
        if text is not None:
            self.peer.send(text)

    async def run(self) -> None:
        """Read the caller's microphone until it ends; started again for a goodbye after the
        conversation (the frames are then dropped)."""
        track = self.peer.microphone
        if track is None:
            return
        audio = CallerAudio()
        try:
            async with watch_idle(self._clock, self._limits.idle_timeout) as idle:
                while True:
                    packet = await track.recv()
                    idle.heard()
                    if self._over or not isinstance(packet, AVFrame):
                        continue
                    channels = len(packet.layout.channels)
                    pcm = bytes(packet.planes[0])[: packet.samples * channels * 2]
                    for frame in audio.frames(pcm, packet.sample_rate, channels, self._clock.now()):
                        await self._frames.send(frame)
        except TimeoutError:
            self.fail(ProtocolError("idle", f"no audio from the page for {self._limits.idle_timeout:g} s", CloseCode.NORMAL))
        except (MediaStreamError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.hang_up()

    # --- from the endpoint and the page ---------------------------------------------------------

    async def wait_connected(self) -> None:
        """Until the page's ``hello``: its media path is up and it can hear."""
        await self._connected.wait()

    def hang_up(self) -> None:
        """The caller has gone (hung up, closed the page, lost the connection)."""
        self._frames.close()

    def close(self) -> None:
        self._frames.close()
        self.track.stop()

    def _message(self, text: str) -> None:
        try:
            match parse_page(text, self._limits.max_message_bytes):
                case Hello(reports_playout=reports):
                    self._ledger.reported = reports
                    self.track.open()
                    self._connected.set()
                case Anchor(rtp=rtp):
                    self._ledger.anchor(rtp)
                case Played(rtp=rtp, age=age):
                    self._ledger.report(rtp, self._clock.now() - age)
        except ProtocolError as failure:
            self.fail(failure)

    def fail(self, failure: ProtocolError) -> None:
        """The page broke the protocol: end the call, and say why once it is over."""
        if self.failure is None:
            self.failure = failure
            log.warning("page broke the call", call_id=self.call_id, code=failure.code, detail=str(failure))
        self.hang_up()
