"""The local transport's settings (the ``transport:`` block of an agent file).

Nothing here touches a sound device: an agent file naming a microphone must still validate on a
machine without one (CI, a server); the devices are looked up when the call starts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from voiceflow.config.base import ProviderConfig

DeviceChoice = Annotated[int, Field(ge=0, le=9_999)] | Annotated[str, Field(min_length=1, max_length=300)] | None
"""A device's number or (part of) its name, as ``python -m sounddevice`` lists them; None for
the system's default."""


class LocalConfig(ProviderConfig):
    provider: Literal["local"] = "local"
    input_device: DeviceChoice = Field(
        None,
        description="The microphone: its number or (part of) its name as `python -m sounddevice` "
        "lists them (the host API's name may be added, e.g. 'USB ALSA'). Unset: the system's default.",
    )
    output_device: DeviceChoice = Field(
        None, description="The speakers or headphones, named the same way. Unset: the system's default."
    )
    sample_rate: int | None = Field(
        None, ge=8_000, le=192_000,
        description="Open both devices at this rate. Unset: each at its own default rate; the "
        "audio is resampled to and from the agent's 16 kHz here.",
    )
    latency: Literal["low", "high"] | Annotated[float, Field(gt=0, le=2)] = Field(
        "low",
        description="PortAudio's suggested device latency: 'low', 'high' or seconds. Lower answers "
        "sooner; raise it if the sound crackles (dropouts).",
    )
    buffer: float = Field(
        0.5, ge=0.04, le=10,
        description="Seconds of the agent's voice queued ahead of the device. Barge-in drops the "
        "queue at once, so this only bounds how far the reply runs ahead.",
    )
    half_duplex: bool = Field(
        False,
        description="Mute the microphone while the agent's voice plays (and echo_tail after): for "
        "loudspeakers, whose sound the microphone would otherwise take for the caller talking. "
        "The caller then cannot interrupt the agent. With headphones leave it off.",
    )
    echo_tail: float = Field(
        0.3, ge=0, le=5,
        description="With half_duplex: seconds the microphone stays muted after the agent's voice "
        "stops (the room's reverberation).",
    )
