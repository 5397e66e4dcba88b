"""The WebRTC side of one call, through aiortc: the page's offer answered with the agent's
track, the caller's track and the data channel handed over when they appear.

Opus is the only codec offered back: the browser's echo cancellation and our playback ledger
(whose RTP arithmetic is Opus's 48 kHz clock) both assume it, and every browser has it.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

CHANNEL_LABEL = "voiceflow"


class MediaError(Exception):
    """The offer cannot make a call (no audio, no Opus, an SDP aiortc refuses)."""


class Peer:
    """One ``RTCPeerConnection`` and what the page brought into it."""

    def __init__(self, ice_servers: list[str], on_message: Callable[[str], None], on_lost: Callable[[], None]) -> None:
        servers = [RTCIceServer(urls=url) for url in ice_servers]
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._on_message = on_message
        self._channel: RTCDataChannel | None = None
        self.microphone: MediaStreamTrack | None = None
        self._pc.on("track", self._track)
        self._pc.on("datachannel", self._datachannel)
        self._pc.on("connectionstatechange", lambda: self._state_changed(on_lost))

    async def answer(self, offer_sdp: str, agent: MediaStreamTrack) -> str:
        """Take the page's offer, send ``agent`` back on its audio line; returns the answer's SDP
        (with every candidate: aiortc gathers before it returns)."""
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:  # noqa: BLE001 - aiortc refuses a bad SDP in many ways; each is the page's fault
            raise MediaError(f"the offer could not be used: {type(exc).__name__}: {exc}") from None
        if self.microphone is None:
            raise MediaError("the offer has no microphone track")
        transceiver = next(t for t in self._pc.getTransceivers() if t.kind == "audio")
        opus = [codec for codec in RTCRtpSender.getCapabilities("audio").codecs if codec.mimeType == "audio/opus"]
        transceiver.setCodecPreferences(opus)
        self._pc.addTrack(agent)
        answer = await self._pc.createAnswer()
        if answer is None or "opus/48000" not in answer.sdp:
            raise MediaError("the browser offered no Opus audio")
        await self._pc.setLocalDescription(answer)
        return str(self._pc.localDescription.sdp)

    def send(self, text: str) -> None:
        """A message to the page, if its data channel is open (events are best effort)."""
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(text)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._pc.close()

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.microphone is None:
            self.microphone = track

    def _datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self._channel is not None:
            return
        self._channel = channel
        channel.on("message", lambda data: self._on_message(data if isinstance(data, str) else ""))

    def _state_changed(self, on_lost: Callable[[], None]) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            on_lost()
