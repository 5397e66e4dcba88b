"""Deadlines hold even where a fault injected on the event loop would not show it: a model load
blocking a worker thread, and a recogniser whose ``send`` never returns."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import pytest

from voiceflow.compute import run_in_thread
from voiceflow.config.base import AttemptTimeouts, ProviderConfig
from voiceflow.frames import AudioFrame, Transcript
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import ProviderKind, ProviderTimeout, STTProvider, STTStream
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.recognizer import Recognized, Recognizer, RecognizerFailed

pytestmark = pytest.mark.anyio

RELEASE = threading.Event()


class StuckConfig(ProviderConfig):
    provider: Literal["stuck"] = "stuck"
    hang: Literal["load", "send"] = "load"


class _StuckStream(STTStream):
    def __init__(self, hang: str) -> None:
        self.hang = hang
        self.sent = 0
        self._send, self._receive = anyio.create_memory_object_stream[Transcript](8)

    async def send(self, frame: AudioFrame) -> None:
        self.sent += 1
        if self.hang == "send" and self.sent == 3:
            await anyio.sleep_forever()  # a socket whose peer stopped reading

    async def finalize(self) -> None:
        await self._send.send(Transcript("hello", True, 0.0))

    async def transcripts(self) -> AsyncIterator[Transcript]:
        async for transcript in self._receive:
            yield transcript

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


class StuckSTT(STTProvider[StuckConfig]):
    """A recogniser that hangs where told."""

    name = "stuck"
    config_model = StuckConfig
    opened: list[_StuckStream] = []

    async def prepare(self) -> None:
        if self.config.hang == "load":
            await run_in_thread(RELEASE.wait, 30.0, abandon_on_cancel=True)  # a model file on a hung disk

    async def open_stream(self) -> STTStream:
        stream = _StuckStream(self.config.hang if not StuckSTT.opened else "none")
        StuckSTT.opened.append(stream)
        return stream


class _Plugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(StuckSTT)


FAST = AttemptTimeouts(prepare=0.3, connect=0.3, first_byte=0.3, idle=0.3)


async def test_a_model_load_hung_in_a_thread_is_abandoned_at_its_deadline() -> None:
    pool = ProviderPool(PluginRegistry(plugins=[_Plugin()], entry_points=False))
    started = time.monotonic()
    try:
        with pytest.raises(ProviderTimeout, match=r"prepare: no answer within 0\.3 s"):
            await pool.get(ProviderKind.STT, StuckConfig(hang="load", timeouts=FAST))
    finally:
        RELEASE.set()
    assert time.monotonic() - started < 5.0  # not the 30 s the thread would have taken


async def test_a_send_that_never_returns_fails_the_stream_and_a_new_one_takes_over() -> None:
    StuckSTT.opened = []
    stt = StuckSTT(StuckConfig(hang="send", timeouts=FAST))
    recognizer = Recognizer([stt])
    await recognizer.open()
    outputs: list[object] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(recognizer.run)
            for i in range(5):
                recognizer.send(AudioFrame(b"\0\0" * 320, i * 0.02))  # never blocks the caller side
            async for output in recognizer.outputs:
                outputs.append(output)
                if isinstance(output, RecognizerFailed):
                    break
            assert len(StuckSTT.opened) >= 1
            while len(StuckSTT.opened) < 2:  # the replacement stream opens on its own
                await anyio.sleep(0.01)
            recognizer.finalize()
            outputs.append(await recognizer.outputs.receive())
            tg.cancel_scope.cancel()
    await recognizer.aclose()
    failure = outputs[0]
    assert isinstance(failure, RecognizerFailed) and failure.error == "send: no answer within 0.3 s"
    answer = outputs[-1]
    assert isinstance(answer, Recognized) and answer.transcript.text == "hello" and answer.answers == 1


@pytest.mark.slow
def test_voiceflow_prepare_reports_each_entry_that_failed(tmp_path: Any) -> None:
    """`voiceflow prepare` is how an operator warms a host: a failed entry must not read as
    "all models ready" just because its chain has a working fallback."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"not a voice")
    (tmp_path / "voice.onnx.json").write_text("{}")
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "name: warm\nprompt: {system: x}\ntransport: {provider: file}\n"
        "vad: [{provider: silero}]\nstt: [{provider: whisper}]\nllm: [{provider: echo}]\n"
        f"tts: [{{provider: piper, model_path: {voice}, sha256: {'a' * 64}}}, {{provider: espeak}}]\n"
    )
    result = subprocess.run([str(Path(sys.executable).with_name("voiceflow")), "prepare", str(agent)],
                            capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{agent}: tts[0] piper:" in result.stderr and "sha256" in result.stderr
    assert "all models ready" not in result.stdout


async def test_a_stream_that_fails_as_it_opens_is_reopened_with_a_back_off_not_in_a_loop() -> None:
    from voiceflow.clock import VirtualClock, using_clock
    from voiceflow.testing.faults import FaultySTT, FaultySTTConfig

    recognizer = Recognizer([FaultySTT(FaultySTTConfig(fault="empty"))])  # transcripts end at once
    failures = 0
    async with VirtualClock() as clock:
        with using_clock(clock):
            await recognizer.open()
            async with anyio.create_task_group() as tg:
                tg.start_soon(recognizer.run)

                async def count() -> None:
                    nonlocal failures
                    async for output in recognizer.outputs:
                        failures += isinstance(output, RecognizerFailed)

                tg.start_soon(count)
                await clock.sleep(60.0)  # a minute of call time
                tg.cancel_scope.cancel()
    await recognizer.aclose()
    # Back-off 0.5 s doubling to 30 s: a handful of attempts in a minute, not thousands.
    assert 3 <= failures <= 10, failures
