"""Finding the sound devices through PortAudio, with errors that say what to do.

``sounddevice`` is imported here, when a call starts, never when the plugin is loaded: every
``voiceflow`` command loads every plugin, and a machine without PortAudio (a server, CI) must
still validate agent files that name the local transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from voiceflow.providers import ProviderUnavailable
from voiceflow_local.config import DeviceChoice

Kind = Literal["input", "output"]

ROLE = {"input": "microphone", "output": "speaker"}
SETTING = {"input": "transport.input_device", "output": "transport.output_device"}

ELSEWHERE = (
    "Without a sound card, call the agent from a browser (`voiceflow serve AGENT --transport web`) "
    "or replay a recording (`voiceflow run AGENT --input caller.wav`)."
)


class DeviceError(ProviderUnavailable):
    """No usable sound device, or no PortAudio: the message says what to install or choose."""


@dataclass(frozen=True, slots=True)
class Device:
    """A device as it will be opened."""

    index: int
    name: str
    host_api: str
    rate: int
    channels: int
    """Channels to open: 1 where the device allows it (the agent is mono)."""

    def describe(self) -> str:
        return f"{self.name!r} ({self.host_api}, {self.rate} Hz)"


def load_portaudio() -> ModuleType:
    """Import ``sounddevice`` (which loads and initialises PortAudio), or say how to get it."""
    try:
        import sounddevice as module
    except ImportError:
        raise DeviceError(
            "the local transport needs the sounddevice package: pip install 'voiceflow[local]'"
        ) from None
    except OSError as exc:
        raise DeviceError(
            f"PortAudio is not installed ({exc}): on Debian or Ubuntu `apt-get install libportaudio2`, "
            "on Fedora `dnf install portaudio`; the sounddevice wheels for macOS and Windows include it"
        ) from None
    sounddevice: ModuleType = module
    return sounddevice


def find_device(sd: ModuleType, choice: DeviceChoice, kind: Kind, rate: int | None) -> Device:
    """The device ``choice`` names (the default one for None), checked to open as PCM16 at
    ``rate`` (its own default rate for None)."""
    role = ROLE[kind]
    try:
        info: dict[str, Any] = sd.query_devices(choice, kind=kind)
    except ValueError as exc:  # a name that matches none or several
        raise DeviceError(f"{SETTING[kind]}: {exc}. {_listing(sd, kind)}") from None
    except sd.PortAudioError:  # no default device, or a number that is not a device
        if choice is None:
            raise DeviceError(_no_device(sd, kind)) from None
        raise DeviceError(f"{SETTING[kind]}: there is no device {choice!r}. {_listing(sd, kind)}") from None
    channels_key = "max_input_channels" if kind == "input" else "max_output_channels"
    if info[channels_key] < 1:
        raise DeviceError(f"{SETTING[kind]}: {info['name']!r} is not a {role}. {_listing(sd, kind)}")
    device = Device(
        index=int(info["index"]),
        name=str(info["name"]),
        host_api=str(sd.query_hostapis(info["hostapi"])["name"]),
        rate=rate or int(info["default_samplerate"]),
        channels=1,
    )
    return _openable(sd, device, kind, int(info[channels_key]))


def _openable(sd: ModuleType, device: Device, kind: Kind, max_channels: int) -> Device:
    """Mono if the device takes it, else the fewest channels it takes (mixed or copied here)."""
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    problem = ""
    for channels in dict.fromkeys((1, min(2, max_channels), max_channels)):
        try:
            check(device=device.index, samplerate=device.rate, channels=channels, dtype="int16")
        except sd.PortAudioError as exc:
            problem = str(exc.args[0]) if exc.args else str(exc)
            continue
        return Device(device.index, device.name, device.host_api, device.rate, channels)
    hint = "; set transport.sample_rate to one it supports" if "sample rate" in problem.lower() else ""
    raise DeviceError(
        f"the {ROLE[kind]} {device.describe()} cannot be opened for 16-bit audio: {problem}{hint}"
    )


def _no_device(sd: ModuleType, kind: Kind) -> str:
    apis = ", ".join(str(api["name"]) for api in sd.query_hostapis()) or "none"
    return (
        f"no {ROLE[kind]} found: PortAudio ({_version(sd)}) sees no {kind} device (host APIs: {apis}). "
        f"Connect or enable one (on Linux, `arecord -l` and `aplay -l` list what ALSA sees), or "
        f"name one with {SETTING[kind]} (`python -m sounddevice` lists them). {ELSEWHERE}"
    )


def _listing(sd: ModuleType, kind: Kind) -> str:
    channels_key = "max_input_channels" if kind == "input" else "max_output_channels"
    found = [
        f"{info['index']} {info['name']!r} ({sd.query_hostapis(info['hostapi'])['name']})"
        for info in sd.query_devices()
        if info[channels_key] > 0
    ]
    if not found:
        return _no_device(sd, kind)
    return f"{ROLE[kind].capitalize()}s here: " + "; ".join(found) + "."


def _version(sd: ModuleType) -> str:
    text = str(sd.get_portaudio_version()[1])
    return text.split(",")[0]
