"""One conversation at this computer's microphone and speakers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from voiceflow.frames import AudioFrame
from voiceflow.providers import CallTransport, OutFrame, PlayedCallback
from voiceflow_local.config import LocalConfig
from voiceflow_local.microphone import Microphone
from voiceflow_local.speaker import Speaker


class LocalCall(CallTransport):
    """The microphone's frames in; the agent's frames out to the speaker, marks when heard.

    Live, so on the real clock. The call ends when the caller hangs up (Ctrl-C: the runtime
    ends the session) or when the microphone's stream stops (the device went away).
    """

    clock = "real"

    def __init__(self, config: LocalConfig, microphone: Microphone, speaker: Speaker, call_id: str) -> None:
        self.config = config
        self.call_id = call_id
        self.microphone = microphone
        self.speaker = speaker

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        config = self.config
        async for frame in self.microphone.frames():
            if config.half_duplex and self.speaker.audible(frame.t, frame.t + frame.duration, config.echo_tail):
                frame = AudioFrame(bytes(len(frame.pcm)), frame.t)  # the agent's own voice: not the caller
            yield frame

    async def play(self, out: OutFrame) -> None:
        await self.speaker.play(out)

    def flush(self) -> None:
        self.speaker.flush()

    def pause(self) -> bool:
        return self.speaker.pause()

    def resume(self) -> None:
        self.speaker.resume()

    def on_played(self, callback: PlayedCallback) -> None:
        self.speaker.on_played(callback)

    async def run(self) -> None:
        await self.speaker.report_heard()
