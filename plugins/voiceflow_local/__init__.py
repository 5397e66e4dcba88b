"""The local transport: talk to an agent through this computer's microphone and speakers.

``voiceflow run AGENT --transport local`` (or ``transport: {provider: local}`` in the agent
file). Sound goes through PortAudio (the ``sounddevice`` package, the ``local`` extra): one input
and one output stream, each at its device's own rate, resampled to and from the agent's 16 kHz
here. The sound card paces the agent's voice, and a frame counts as heard when PortAudio says its
first sample reaches the speaker (docs/transports.md).

There is no echo cancellation: use headphones, or ``half_duplex: true`` on loudspeakers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import anyio
import structlog

from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.providers import SessionRunner, TransportProvider
from voiceflow_local.call import LocalCall
from voiceflow_local.config import LocalConfig
from voiceflow_local.device_time import nominal_latency
from voiceflow_local.devices import Device, DeviceError, find_device, load_portaudio
from voiceflow_local.microphone import Microphone
from voiceflow_local.speaker import Speaker

__all__ = ["DeviceError", "LocalCall", "LocalConfig", "LocalTransport"]

log = structlog.get_logger("voiceflow.local")


class LocalTransport(TransportProvider[LocalConfig]):
    """This computer's microphone and speakers (PortAudio): one call, until Ctrl-C."""

    name = "local"
    config_model = LocalConfig

    async def serve(self, run_session: SessionRunner) -> None:
        sd = load_portaudio()
        config = self.config
        mic = find_device(sd, config.input_device, "input", config.sample_rate)
        out = find_device(sd, config.output_device, "output", config.sample_rate)
        microphone = Microphone(mic.rate, mic.channels)
        speaker = Speaker(out.rate, config.buffer)
        call = LocalCall(config, microphone, speaker, call_id=f"local:{mic.name}")
        with _streams(sd, config, mic, out, microphone, speaker):
            log.info(
                "local call: speak now; Ctrl-C hangs up",
                microphone=mic.describe(),
                speaker=out.describe(),
                output_latency_ms=round(speaker.latency * 1000),
                echo="half duplex: the microphone is muted while the agent speaks" if config.half_duplex
                else "no echo cancellation: use headphones",
            )
            try:
                await run_session(call)
                # The agent's last words (a goodbye) are in the device's buffer: let them play.
                await anyio.sleep(min(1.0, max(0.0, speaker.heard_by() - time.monotonic())))
            finally:
                if microphone.overflows or speaker.underflows or microphone.dropped:
                    log.warning(
                        "local call: the sound broke up; raise transport.latency",
                        microphone_overflows=microphone.overflows,
                        microphone_blocks_dropped=microphone.dropped,
                        speaker_underflows=speaker.underflows,
                    )


@contextmanager
def _streams(
    sd: ModuleType, config: LocalConfig, mic: Device, out: Device, microphone: Microphone, speaker: Speaker
) -> Iterator[None]:
    """Open and start both streams for the call; stop and close them however it ends."""
    microphone.attach()
    speaker.attach()
    opened: list[Any] = []
    try:
        try:
            opened.append(sd.InputStream(
                device=mic.index, samplerate=mic.rate, channels=mic.channels, dtype="int16",
                latency=config.latency, callback=microphone.callback, finished_callback=microphone.stopped,
            ))
            opened.append(sd.OutputStream(
                device=out.index, samplerate=out.rate, channels=out.channels, dtype="int16",
                latency=config.latency, callback=speaker.callback,
            ))
            microphone.latency = nominal_latency(float(opened[0].latency))
            speaker.latency = nominal_latency(float(opened[1].latency))
            microphone.clock.read = _reader(opened[0])
            speaker.clock.read = _reader(opened[1])
            for stream in opened:
                stream.start()
        except sd.PortAudioError as exc:
            raise DeviceError(f"the sound devices cannot be started: {exc}") from None
        yield
    finally:
        for stream in opened:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)


def _reader(stream: Any) -> Callable[[], float]:
    def read() -> float:
        return float(stream.time)

    return read


@hookimpl
def register_transports(register: Any) -> None:
    register(LocalTransport)
