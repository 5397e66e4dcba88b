"""The local transport's parts without a sound card: PortAudio's callbacks are called by the
test with the arguments PortAudio passes (blocks, ADC/DAC times, status flags), on the loop's
thread, so every rule is checked exactly: framing and capture stamps, playback order, marks at
their DAC time, flush, back-pressure, pause, half duplex; device choice and its error messages
against a stand-in for sounddevice's device queries; the settings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import anyio
import numpy as np
import pytest
from pydantic import ValidationError

from voiceflow.frames import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.providers import OutFrame
from voiceflow_local.config import LocalConfig
from voiceflow_local.device_time import StreamClock, nominal_latency
from voiceflow_local.devices import DeviceError, find_device
from voiceflow_local.microphone import CaptureFramer, Microphone
from voiceflow_local.speaker import Speaker

pytestmark = pytest.mark.anyio

DEVICE_RATE = 48_000


def sine(hz: float, seconds: float, rate: int, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (level * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def times(dac: float = 0.0, adc: float = 0.0) -> Any:
    return SimpleNamespace(outputBufferDacTime=dac, inputBufferAdcTime=adc, currentTime=0.0)


def status(**flags: bool) -> Any:
    return SimpleNamespace(output_underflow=flags.get("underflow", False), input_overflow=flags.get("overflow", False))


# --- the microphone -------------------------------------------------------------------------


def test_blocks_become_20ms_frames_stamped_with_their_capture_time() -> None:
    framer = CaptureFramer(DEVICE_RATE)
    audio = sine(300, 1.0, DEVICE_RATE)
    sizes = [441, 1024, 17, 960, 2048, 300] * 20  # whatever PortAudio hands over
    frames: list[AudioFrame] = []
    at = 0
    for size in sizes:
        block = audio[at : at + size]
        if not len(block):
            break
        frames += framer.push(block.tobytes(), 100.0 + at / DEVICE_RATE)
        at += len(block)
    assert all(len(frame.pcm) == FRAME_BYTES for frame in frames)
    assert len(frames) >= 48
    steps = np.diff([frame.t for frame in frames])
    assert np.allclose(steps, FRAME_SECONDS, atol=2e-5)  # back to back
    # The first frame starts where the recording starts (the resampler's filter delay aside).
    assert frames[0].t == pytest.approx(100.0, abs=0.008)
    # The audio is the same sine at 16 kHz: its pitch and level.
    pcm = np.frombuffer(b"".join(frame.pcm for frame in frames), dtype="<i2").astype(np.float64)[800:]
    assert np.argmax(np.abs(np.fft.rfft(pcm))) * SAMPLE_RATE / len(pcm) == pytest.approx(300, abs=2)
    assert np.sqrt(np.mean(pcm**2)) == pytest.approx(0.3 * 32767 / np.sqrt(2), rel=0.02)


def test_a_gap_in_capture_shows_in_the_stamps() -> None:
    """Input the device dropped (an overflow) is a gap in time, not audio pulled earlier."""
    framer = CaptureFramer(SAMPLE_RATE)
    first = framer.push(bytes(FRAME_BYTES * 5), 10.0)
    later = framer.push(bytes(FRAME_BYTES * 5), 10.5)
    assert [f.t for f in first] == pytest.approx([10.0 + i * FRAME_SECONDS for i in range(5)])
    assert [f.t for f in later] == pytest.approx([10.5 + i * FRAME_SECONDS for i in range(5)])


def test_stamps_never_overlap_when_the_device_clock_runs_fast() -> None:
    framer = CaptureFramer(SAMPLE_RATE)
    frames = framer.push(bytes(FRAME_BYTES), 10.0) + framer.push(bytes(FRAME_BYTES), 10.015)
    assert frames[1].t == pytest.approx(frames[0].t + FRAME_SECONDS)


async def test_the_microphone_mixes_to_mono_stamps_on_the_loop_clock_and_ends_with_the_stream() -> None:
    microphone = Microphone(SAMPLE_RATE, channels=2)
    microphone.clock.read = lambda: 50.0
    microphone.attach()
    left = sine(440, 0.1, SAMPLE_RATE)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    before = time.monotonic()
    microphone.callback(stereo, len(stereo), times(adc=49.9), status())
    microphone.callback(stereo[:10], 10, times(adc=0.0), status(overflow=True))  # no time: nominal
    microphone.stopped()
    frames = [frame async for frame in microphone.frames()]
    assert len(frames) == 5
    # The ADC time was 0.1 s before the callback ran: so is the first frame's stamp.
    assert before - 0.1 - 0.01 < frames[0].t < time.monotonic() - 0.1 + 0.01
    mixed = np.frombuffer(frames[1].pcm, dtype="<i2")
    assert np.abs(mixed).max() == pytest.approx(np.abs(left).max() / 2, rel=0.05)  # (L + R) / 2
    assert microphone.overflows == 1


async def test_a_microphone_that_stops_delivering_ends_the_call() -> None:
    """Some host APIs never report an unplugged device: its blocks just stop coming."""
    microphone = Microphone(SAMPLE_RATE, channels=1)
    microphone.stall_after = 0.2
    microphone.attach()
    microphone.callback(np.zeros((640, 1), dtype=np.int16), 640, times(), status())
    with anyio.fail_after(5):
        frames = [frame async for frame in microphone.frames()]
    assert len(frames) == 2


# --- the speaker ----------------------------------------------------------------------------


@dataclass
class Device:
    """Plays the part of PortAudio's output stream: asks its speaker for blocks."""

    rate: int = SAMPLE_RATE
    buffer_seconds: float = 1.0
    ahead: float = 0.1
    """Seconds between a callback and its block's first sample leaving the converter."""
    stream_now: float = 1000.0

    def __post_init__(self) -> None:
        self.speaker = Speaker(self.rate, self.buffer_seconds)
        self.speaker.attach()
        self.speaker.clock.read = lambda: self.stream_now
        self.heard: list[tuple[object, float]] = []
        self.speaker.on_played(lambda mark, t: self.heard.append((mark, t)))

    def block(self, frames: int = 480) -> np.ndarray:
        out = np.full((frames, 2), 7, dtype=np.int16)
        self.speaker.callback(out, frames, times(dac=self.stream_now + self.ahead), status())
        assert (out[:, 0] == out[:, 1]).all()  # the same on every channel
        return out[:, 0].copy()


def frame(value: int, mark: object) -> OutFrame:
    return OutFrame(AudioFrame(np.full(320, value, dtype="<i2").tobytes()), mark)


async def settle() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_frames_play_in_order_and_each_mark_comes_when_its_frame_is_heard() -> None:
    device = Device(ahead=0.15)
    speaker = device.speaker
    async with anyio.create_task_group() as tg:
        tg.start_soon(speaker.report_heard)
        for i in range(3):
            await speaker.play(frame(1000 * (i + 1), f"m{i}"))
        called = time.monotonic()
        block = device.block(800)  # one frame and a quarter more than two
        await settle()
        assert device.heard == []  # not yet: the first sample is 150 ms away
        with anyio.fail_after(5):
            while len(device.heard) < 3:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert list(block[:320]) == [1000] * 320 and list(block[320:640]) == [2000] * 320
    assert list(block[640:]) == [3000] * 160
    marks, heard = zip(*device.heard, strict=True)
    assert marks == ("m0", "m1", "m2")
    # Each at its own sample's DAC time: the block's, plus where in the block it starts.
    assert heard[0] == pytest.approx(called + 0.15, abs=0.01)
    assert np.diff(heard) == pytest.approx([0.02, 0.02], abs=1e-4)


async def test_an_empty_queue_plays_silence() -> None:
    device = Device()
    speaker = device.speaker
    await speaker.play(frame(500, "m"))
    block = device.block(480)
    assert list(block[:320]) == [500] * 320 and not block[320:].any()


async def test_flush_drops_queued_audio_and_unreported_marks_at_once() -> None:
    device = Device(ahead=0.2)
    speaker = device.speaker
    async with anyio.create_task_group() as tg:
        tg.start_soon(speaker.report_heard)
        for i in range(10):
            await speaker.play(frame(100, i))
        device.block(640)  # two frames handed to the device, heard in 200 ms
        await settle()
        speaker.flush()
        assert not device.block(480).any()  # nothing left to play
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert device.heard == []  # played after the barge-in: no longer counts


async def test_a_block_reported_after_a_flush_does_not_count() -> None:
    """The device took audio just before the flush, and its report reached the loop after."""
    device = Device(ahead=0.0)
    speaker = device.speaker
    async with anyio.create_task_group() as tg:
        tg.start_soon(speaker.report_heard)
        await speaker.play(frame(100, "before"))
        device.block(320)  # its report is on its way to the loop
        speaker.flush()
        await speaker.play(frame(200, "after"))
        device.block(320)
        with anyio.fail_after(5):
            while not device.heard:
                await anyio.sleep(0.01)
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert [mark for mark, _ in device.heard] == ["after"]


async def test_play_waits_while_the_buffer_is_full() -> None:
    device = Device(buffer_seconds=0.1)  # five frames
    speaker = device.speaker
    for i in range(5):
        await speaker.play(frame(1, i))
    queued = anyio.Event()

    async def sixth() -> None:
        await speaker.play(frame(1, 5))
        queued.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sixth)
        await anyio.sleep(0.1)
        assert not queued.is_set()
        device.block(320)  # the device takes a frame: room for one
        with anyio.fail_after(5):
            await queued.wait()


async def test_pause_holds_the_queue_and_resume_plays_on_from_there() -> None:
    device = Device()
    speaker = device.speaker
    await speaker.play(frame(1, "a"))
    await speaker.play(frame(2, "b"))
    assert list(device.block(320)) == [1] * 320
    assert speaker.pause() is True
    assert not device.block(320).any()
    speaker.resume()
    assert list(device.block(320)) == [2] * 320


async def test_half_duplex_knows_when_the_agent_is_audible() -> None:
    device = Device(ahead=0.5)
    speaker = device.speaker
    for i in range(5):
        await speaker.play(frame(100, i))
    now = time.monotonic()
    device.block(1600)  # 100 ms of voice, heard from now + 0.5 s
    await settle()
    assert speaker.audible(now + 0.55, now + 0.57, tail=0)
    assert not speaker.audible(now + 0.3, now + 0.32, tail=0)  # before it is heard
    assert speaker.audible(now + 0.7, now + 0.72, tail=0.2)  # the room still rings
    assert not speaker.audible(now + 0.7, now + 0.72, tail=0.05)


async def test_resampling_to_the_device_rate_keeps_the_voice_and_ends_cleanly() -> None:
    """16 kHz frames become 48 kHz blocks; when the queue runs dry the resampler's last few
    milliseconds are played too, not held back until the next reply."""
    device = Device(rate=DEVICE_RATE)
    speaker = device.speaker
    voice = sine(440, 0.2, SAMPLE_RATE)
    for i in range(10):
        await speaker.play(OutFrame(AudioFrame(voice[i * 320 : (i + 1) * 320].tobytes()), i))
    played = []
    for _ in range(25):  # 250 ms: runs dry, and the loop hears of it between blocks
        played.append(device.block(480))
        await settle()
    out = np.concatenate(played).astype(np.float64)
    loud = np.flatnonzero(np.abs(out) > 1000)
    # All 200 ms are played; the resampler's tail follows at the next block, not the next reply.
    energy = np.sum(out**2) / DEVICE_RATE
    assert energy == pytest.approx((0.3 * 32767) ** 2 / 2 * 0.2, rel=0.03)
    assert 0.2 <= (loud[-1] - loud[0]) / DEVICE_RATE < 0.2 + 480 / DEVICE_RATE
    spectrum = np.abs(np.fft.rfft(out[loud[0] : loud[-1]]))
    assert np.argmax(spectrum) * DEVICE_RATE / (loud[-1] - loud[0]) == pytest.approx(440, abs=5)


# --- device times ---------------------------------------------------------------------------


def test_stream_times_move_onto_the_monotonic_clock() -> None:
    clock = StreamClock()
    clock.read = lambda: 500.0
    now = time.monotonic()
    assert clock.monotonic(500.25, otherwise=9.0) == pytest.approx(now + 0.25, abs=0.01)
    assert clock.monotonic(499.9, otherwise=9.0) == pytest.approx(now - 0.1, abs=0.01)
    assert clock.monotonic(0.0, otherwise=0.04) == pytest.approx(now + 0.04, abs=0.01)  # not reported
    assert clock.monotonic(9000.0, otherwise=0.04) == pytest.approx(now + 0.04, abs=0.01)  # impossible
    clock.read = lambda: 0.0  # no stream clock
    assert clock.monotonic(500.25, otherwise=0.04) == pytest.approx(now + 0.04, abs=0.01)
    assert nominal_latency(0.02) == 0.02 and nominal_latency(89478.5) == 0.0


# --- choosing devices -----------------------------------------------------------------------


class PortAudioError(Exception):
    pass


class FakeSoundDevice:
    """sounddevice's device queries over a fixed list (the real module needs PortAudio)."""

    PortAudioError = PortAudioError

    def __init__(self, devices: list[dict[str, Any]], rates: tuple[int, ...] = (44_100, 48_000)) -> None:
        self.devices = [{"index": i, "hostapi": 0, "default_samplerate": 48_000.0, **d} for i, d in enumerate(devices)]
        self.rates = rates

    def query_hostapis(self, index: int | None = None) -> Any:
        apis = [{"name": "ALSA"}]
        return apis if index is None else apis[index]

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        if kind is None:
            return self.devices
        channels = f"max_{kind}_channels"
        if device is None:
            usable = [d for d in self.devices if d[channels] > 0]
            if not usable:
                raise PortAudioError("Error querying device -1")
            return usable[0]
        if isinstance(device, int):
            if device >= len(self.devices):
                raise PortAudioError(f"Error querying device {device}")
            return self.devices[device]
        found = [d for d in self.devices if device.lower() in d["name"].lower() and d[channels] > 0]
        if len(found) != 1:
            raise ValueError(f"{'No' if not found else 'Multiple'} {kind} device{'s' if found else ''} "
                             f"{'matching' if not found else 'found for'} {device!r}")
        return found[0]

    def check_input_settings(self, device: int, samplerate: int, channels: int, dtype: str) -> None:
        self._check(device, samplerate, channels, "max_input_channels")

    def check_output_settings(self, device: int, samplerate: int, channels: int, dtype: str) -> None:
        self._check(device, samplerate, channels, "max_output_channels")

    def _check(self, device: int, rate: int, channels: int, key: str) -> None:
        info = self.devices[device]
        if rate not in self.rates:
            raise PortAudioError("Invalid sample rate", -9997)
        if channels < info.get("min_channels", 1) or channels > info[key]:
            raise PortAudioError("Invalid number of channels", -9998)

    def get_portaudio_version(self) -> tuple[int, str]:
        return 1246720, "PortAudio V19.6.0-devel, revision 396fe4b"


LAPTOP = [
    {"name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2, "max_output_channels": 2},
    {"name": "USB headset: Audio (hw:1,0)", "max_input_channels": 1, "max_output_channels": 2, "min_channels": 2},
    {"name": "HDMI 0 (hw:0,3)", "max_input_channels": 0, "max_output_channels": 8},
]


def test_devices_by_default_name_or_number() -> None:
    sd: Any = FakeSoundDevice(LAPTOP)
    assert find_device(sd, None, "input", None).name.startswith("HDA Intel")
    headset = find_device(sd, "usb", "output", None)
    assert (headset.index, headset.rate, headset.channels) == (1, 48_000, 2)  # takes no mono: stereo
    assert find_device(sd, 2, "output", 44_100).rate == 44_100
    assert find_device(sd, 2, "output", None).describe() == "'HDMI 0 (hw:0,3)' (ALSA, 48000 Hz)"


@pytest.mark.parametrize(("choice", "kind", "rate", "says"), [
    ("webcam", "input", None, "transport.input_device: No input device matching 'webcam'. Microphones here: "
     "0 'HDA Intel PCH: ALC3246 Analog (hw:0,0)' (ALSA); 1 'USB headset: Audio (hw:1,0)' (ALSA)."),
    ("hw", "output", None, "transport.output_device: Multiple output devices found for 'hw'. Speakers here: "),
    (7, "input", None, "transport.input_device: there is no device 7. Microphones here: "),
    (2, "input", None, "transport.input_device: 'HDMI 0 (hw:0,3)' is not a microphone."),
    (0, "input", 22_050, "cannot be opened for 16-bit audio: Invalid sample rate; set transport.sample_rate "
     "to one it supports"),
])
def test_a_device_that_will_not_do_says_what_will(choice: Any, kind: Any, rate: int | None, says: str) -> None:
    sd: Any = FakeSoundDevice(LAPTOP)
    with pytest.raises(DeviceError) as error:
        find_device(sd, choice, kind, rate)
    assert says in str(error.value)


def test_no_device_at_all_says_what_to_do() -> None:
    sd: Any = FakeSoundDevice([])
    with pytest.raises(DeviceError) as error:
        find_device(sd, None, "input", None)
    text = str(error.value)
    assert text.startswith("no microphone found: PortAudio (PortAudio V19.6.0-devel) sees no input device (host APIs: ALSA).")
    for remedy in ("arecord -l", "transport.input_device", "python -m sounddevice",
                   "voiceflow serve AGENT --transport web", "voiceflow run AGENT --input caller.wav"):
        assert remedy in text


# --- settings -------------------------------------------------------------------------------


def test_settings() -> None:
    assert LocalConfig().model_dump(include={"input_device", "output_device", "sample_rate", "latency", "buffer",
                                             "half_duplex", "echo_tail"}) == {
        "input_device": None, "output_device": None, "sample_rate": None,
        "latency": "low", "buffer": 0.5, "half_duplex": False, "echo_tail": 0.3,
    }
    assert LocalConfig(input_device=3, output_device="USB", latency=0.05).latency == 0.05
    for wrong in ({"latency": "medium"}, {"latency": 0}, {"latency": 5}, {"buffer": 0}, {"sample_rate": 1000},
                  {"half_duplex": "sometimes"}, {"device": "x"}, {"input_device": -1}, {"output_device": ""}):
        with pytest.raises(ValidationError):
            LocalConfig(**wrong)
