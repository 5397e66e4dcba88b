"""A sound card for tests on machines without one: JACK's dummy driver, played by a caller.

These machines have no sound hardware, no ALSA card and no way to load a kernel module
(``snd-aloop``), and ALSA's ``null`` plugin takes and gives audio as fast as it is asked (no
clock), so none of those can run PortAudio in real time. A JACK server with its ``dummy``
driver can: it runs the JACK graph on a timer, exactly as a sound card's interrupt would, and
PortAudio (Debian's is built with JACK) lists every JACK client as a device.

The test's caller is two such clients, so PortAudio sees them as a microphone and a speaker:

- ``vf-mic`` has one physical output port: whatever the test says into it (real speech, at
  48 kHz) is what the transport's input stream captures. Its capture latency is set, so the
  ADC time PortAudio reports is that much earlier than the cycle, as with a real converter.
- ``vf-speaker`` has one physical input port that records whatever the transport plays, with
  the JACK frame it arrived in; its playback latency is set, so PortAudio reports the DAC time
  that much later. A sample counts as heard at its frame's time plus that latency.

Both keep their own truth on the event loop's clock (``time.monotonic()``): when each word was
said into the microphone, when each sample of the agent's voice reached the ear. Tests compare
the transport's stamps and marks against it. ``echo`` feeds what the speaker plays back into the
microphone (a loudspeaker in the room).

What it needs (``bash scripts/test.sh`` installs it): Debian's ``jackd2`` and ``libportaudio2``,
PyPI's ``sounddevice`` (the ``local`` extra) and ``JACK-Client``. Missing, the tests skip with
that command; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from voiceflow.audio import resample

RATE = 48_000
PERIOD = 480
"""Frames per JACK cycle: 10 ms, a typical desktop sound card's period."""
INSTALL = "apt-get install jackd2 libportaudio2 && pip install -e '.[local]' JACK-Client (or: bash scripts/test.sh)"
CAPTURE, PLAYBACK = 0, 1
"""JackCaptureLatency and JackPlaybackLatency."""


def unavailable(what: str) -> None:
    """Skip locally, fail in CI (where scripts/test.sh installs all of it)."""
    reason = f"{what}: {INSTALL}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def portaudio() -> ModuleType:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        unavailable(f"PortAudio through sounddevice is not available ({exc})")
    module: ModuleType = sounddevice
    return module


def restart_portaudio(*, start: bool = True) -> None:
    """PortAudio lists devices once, when it starts: start it again to see the JACK server's
    clients (sounddevice's own refresh, as its documentation suggests). ``start=False`` only
    stops it, letting go of a server about to stop."""
    sd = portaudio()
    if sd._initialized:
        sd._terminate()
    if start:
        sd._initialize()


@contextmanager
def jack_server() -> Iterator[str]:
    """A private JACK server on the dummy driver; yields its name (``JACK_DEFAULT_SERVER``)."""
    if shutil.which("jackd") is None:
        unavailable("jackd is not installed")
    try:
        import jack  # noqa: F401 - the test's caller
    except (ImportError, OSError) as exc:
        unavailable(f"JACK-Client is not available ({exc})")
    name = f"voiceflow-test-{os.getpid()}"
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1", "JACK_NO_START_SERVER": "1"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            ["jackd", "--name", name, "--realtime", "--timeout", "10000",
             "-d", "dummy", "--rate", str(RATE), "--period", str(PERIOD)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        try:
            _wait_for_server(name, process, log)
            saved = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
            os.environ.update({"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"})
            try:
                yield name
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            process.kill()  # nothing if it has stopped
            process.wait()


def _wait_for_server(name: str, process: subprocess.Popen[bytes], log: Any) -> None:
    import jack

    deadline = time.monotonic() + 30
    while True:
        try:
            jack.Client("voiceflow-probe", servername=name, no_start_server=True).close()
            return
        except jack.JackError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"jackd did not start: {log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.05)


class _Latency:
    """Sets a port's latency the way a driver does, through libjack (JACK-Client has no call
    for it). JACK recomputes latencies whenever the graph changes, so it is set again from the
    client's latency callback each time, and PortAudio 19.6 reads it back as the port's latency."""

    class _Range(ctypes.Structure):
        _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]

    _CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)

    def __init__(self, client: Any, port: Any, mode: int, frames: int) -> None:
        import jack

        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_port_set_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(self._Range)]
        lib.jack_set_latency_callback.argtypes = [ctypes.c_void_p, self._CALLBACK, ctypes.c_void_p]
        self._lib = lib
        self._port = int(jack._ffi.cast("uintptr_t", port._ptr))
        self._mode = mode
        self._range = self._Range(frames, frames)
        self._callback = self._CALLBACK(self._on_latency)  # kept alive as long as the client
        lib.jack_set_latency_callback(int(jack._ffi.cast("uintptr_t", client._ptr)), self._callback, None)

    def _on_latency(self, mode: int, arg: object) -> None:
        if mode == self._mode:
            self.apply()

    def apply(self) -> None:
        self._lib.jack_port_set_latency_range(self._port, self._mode, ctypes.byref(self._range))


@dataclass(frozen=True)
class Utterance:
    """Something the caller said, on the loop's clock: ``start`` when its first sample entered
    the microphone (its cycle's time less the capture latency), ``end`` just after its last."""

    start: float
    end: float


class Caller:
    """The microphone and the speaker, as JACK clients; see the module docstring."""

    def __init__(self, server: str, capture_latency: float = 0.15, playback_latency: float = 0.25) -> None:
        import jack

        self.capture_latency = capture_latency
        self.playback_latency = playback_latency
        self.echo = 0.0
        """How much of what the speaker plays the microphone hears (a loudspeaker in the room):
        each sample enters the microphone when it is heard, and reaches its port (and the
        transport) the capture latency later."""
        self._lock = threading.Lock()
        self._speech: list[np.ndarray] = []
        self._speaking: np.ndarray | None = None
        self._utterance_start: float | None = None
        self.utterances: list[Utterance] = []
        self._ear: list[np.ndarray] = []
        self._ear_times: list[float] = []
        self._echo: list[np.ndarray] = []
        self._echo_cycles = round((capture_latency + playback_latency) * RATE / PERIOD)

        self.mic = jack.Client("vf-mic", servername=server, no_start_server=True)
        self.speaker = jack.Client("vf-speaker", servername=server, no_start_server=True)
        self._mouth = self.mic.outports.register("capture_1", is_physical=True, is_terminal=True)
        self._ear_port = self.speaker.inports.register("playback_1", is_physical=True, is_terminal=True)
        self._latencies = [
            _Latency(self.mic, self._mouth, CAPTURE, round(capture_latency * RATE)),
            _Latency(self.speaker, self._ear_port, PLAYBACK, round(playback_latency * RATE)),
        ]
        self.mic.set_process_callback(self._mic_cycle)
        self.speaker.set_process_callback(self._speaker_cycle)
        self.speaker.activate()
        self.mic.activate()
        for latency in self._latencies:
            latency.apply()

    def close(self) -> None:
        for client in (self.mic, self.speaker):
            client.deactivate()
            client.close()

    # --- what the test does -------------------------------------------------------------------

    def say(self, pcm16k: bytes) -> None:
        """Speak ``pcm16k`` (PCM16 mono at 16 kHz) into the microphone, after what is queued."""
        samples = np.frombuffer(resample(pcm16k, 16_000, RATE), dtype="<i2").astype(np.float32) / 32768.0
        with self._lock:
            self._speech.append(samples)

    @property
    def quiet(self) -> bool:
        """Nothing left to say."""
        with self._lock:
            return not self._speech and self._speaking is None

    def clear_ear(self) -> None:
        """Forget what the speaker has played so far (between calls)."""
        with self._lock:
            self._ear.clear()
            self._ear_times.clear()

    def ear(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything the speaker has played (float samples at 48 kHz) and, per sample, when it
        is heard (the loop's clock)."""
        with self._lock:
            blocks, starts = list(self._ear), list(self._ear_times)
        if not blocks:
            return np.zeros(0, dtype=np.float32), np.zeros(0)
        samples = np.concatenate(blocks)
        times = np.concatenate([start + np.arange(len(b)) / RATE for b, start in zip(blocks, starts, strict=True)])
        return samples, times

    def heard_until(self) -> float:
        """Up to when (the loop's clock) the ear has heard everything played to it."""
        with self._lock:
            if not self._ear:
                return -float("inf")
            return self._ear_times[-1] + len(self._ear[-1]) / RATE

    def voice(self, after: float = -float("inf"), before: float = float("inf")) -> list[tuple[float, float]]:
        """Stretches of the ear's recording with voice in it (between ``after`` and ``before``),
        as (first heard, last heard) on the loop's clock; gaps shorter than 50 ms (a dropout on
        a busy machine) are bridged."""
        spans: list[tuple[float, float]] = []
        for start, end in self._loud():
            if start < after or end > before:
                continue
            if spans and start - spans[-1][1] < 0.05:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        return spans

    def voiced_seconds(self, span: tuple[float, float]) -> float:
        """How much voice the ear heard within ``span`` (dropouts not counted)."""
        return sum(min(end, span[1]) - max(start, span[0]) for start, end in self._loud()
                   if start < span[1] and end > span[0])

    def _loud(self, threshold: float = 0.05, window: float = 0.01) -> list[tuple[float, float]]:
        """The ear's ``window``-long pieces louder than ``threshold`` (RMS), as (start, end)."""
        samples, times = self.ear()
        size = round(window * RATE)
        count = len(samples) // size
        rms = np.sqrt(np.mean(samples[: count * size].reshape(count, size) ** 2, axis=1))
        return [(times[i * size], times[i * size] + window) for i in np.flatnonzero(rms > threshold)]

    # --- JACK's thread ------------------------------------------------------------------------

    def _cycle_time(self, client: Any) -> float:
        """The loop's clock at the start of the current cycle."""
        elapsed: int = client.frame_time - client.last_frame_time
        return time.monotonic() - elapsed / RATE

    def _mic_cycle(self, frames: int) -> None:
        out = self._mouth.get_array()
        out[:] = 0.0
        start = self._cycle_time(self.mic) - self.capture_latency
        written = 0
        with self._lock:
            while written < frames:
                if self._speaking is None:
                    if not self._speech:
                        break
                    self._speaking = self._speech.pop(0)
                    self._utterance_start = start + written / RATE
                take = self._speaking[: frames - written]
                out[written : written + len(take)] = take
                written += len(take)
                self._speaking = self._speaking[len(take) :]
                if not len(self._speaking):
                    assert self._utterance_start is not None
                    self.utterances.append(Utterance(self._utterance_start, start + written / RATE))
                    self._speaking = None
            echo = self._echo.pop(0) if len(self._echo) > self._echo_cycles else None
        if self.echo and echo is not None:
            count = min(frames, len(echo))
            out[:count] += self.echo * echo[:count]

    def _speaker_cycle(self, frames: int) -> None:
        block = np.array(self._ear_port.get_array(), dtype=np.float32)
        heard = self._cycle_time(self.speaker) + self.playback_latency
        with self._lock:
            self._ear.append(block)
            self._ear_times.append(heard)
            self._echo.append(block)
