"""The file transport: a caller recording in, the whole call out as a stereo WAV.

It behaves like a phone line, not like a batch job: caller frames arrive one every 20 ms (each
delivered when it would have finished arriving), agent audio is played out at 20 ms a frame, and
a barge-in flush drops what has not been played yet. On the virtual clock all of that happens
faster than real time while compute still counts in full, so the timeline shows live latencies.

The output WAV puts the caller on the left channel and the agent on the right, each sample at the
moment it was sent or heard, so the gaps you hear in it are the gaps a caller would hear.
"""

from __future__ import annotations

from typing import Any

from voiceflow.audio import read_wav
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import SessionRunner, TransportProvider
from voiceflow_file.call import FileCall
from voiceflow_file.config import FileTransportConfig

__all__ = ["FileCall", "FileTransport", "FileTransportConfig"]


class FileTransport(TransportProvider[FileTransportConfig]):
    """Plays a WAV recording into the agent and records both sides of the call to a WAV."""

    name = "file"
    config_model = FileTransportConfig

    async def serve(self, run_session: SessionRunner) -> None:
        pcm = read_wav(self.config.input) if self.config.input else b""
        call = FileCall(self.config, pcm)
        try:
            await run_session(call)
        finally:
            call.close()
            if self.config.output is not None:
                call.write(self.config.output)


@hookimpl
def register_transports(register: Any) -> None:
    register(FileTransport)
