"""Phone audio: G.711 μ-law, and a voice's own μ-law reaching a μ-law wire untouched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness import fake_agent, fake_registry
from voiceflow.clock import open_clock
from voiceflow.frames import FRAME_BYTES
from voiceflow.g711 import MULAW_FRAME_BYTES, mulaw_decode, mulaw_encode
from voiceflow.providers import OutFrame
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import Session
from voiceflow.testing.fakes import ToneTTS, ToneTTSConfig, silence, speech_like
from voiceflow_file import FileCall, FileTransportConfig

pytestmark = pytest.mark.anyio


def test_mulaw_matches_the_g711_reference_points() -> None:
    assert mulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])) == np.array([0, 0, 32124, -32124], "<i2").tobytes()
    assert mulaw_encode(np.array([0, 32767, -32768, 1000, -1000], "<i2").tobytes()) == bytes(
        [0xFF, 0x80, 0x00, 0xCE, 0x4E])


def test_mulaw_round_trips_every_code_and_keeps_pcm_within_its_step() -> None:
    codes = bytes(c for c in range(256) if c != 0x7F)  # 0x7F is "-0": it comes back as 0xFF
    assert mulaw_encode(mulaw_decode(codes)) == codes
    pcm = np.arange(-32768, 32768, 7, dtype=np.int32)
    back = np.frombuffer(mulaw_decode(mulaw_encode(pcm.astype("<i2").tobytes())), "<i2").astype(np.int32)
    # The quantisation step grows with the level: 2 at the bottom, 1024 at the top segment.
    assert np.all(np.abs(back - pcm) <= np.maximum(16, np.abs(pcm) // 16))


class PhoneLine(FileCall):
    """The file transport pretending to be a phone line: it keeps every frame it is given."""

    wire_format = "mulaw/8000"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[OutFrame] = []

    async def play(self, out: OutFrame) -> None:
        self.sent.append(out)
        await super().play(out)


async def call_on_a_phone_line(speaks_mulaw: bool) -> PhoneLine:
    registry = fake_registry()
    agent = fake_agent(registry, tts=[{"provider": "tone", "speaks_mulaw": speaks_mulaw}],
                       prompt={"system": "x", "greeting": {"text": "Hello there caller."}})
    pool = ProviderPool(registry)
    await prepare(agent, pool)
    line = PhoneLine(FileTransportConfig(), silence(0.5) + speech_like(1.0) + silence(3.0))
    async with open_clock("virtual") as clock:
        await Session(agent, pool, line, clock).run()
    line.close()
    return line


async def test_a_voice_that_speaks_mulaw_reaches_the_wire_untouched() -> None:
    line = await call_on_a_phone_line(speaks_mulaw=True)
    assert line.sent and all(out.wire is not None and len(out.wire) == MULAW_FRAME_BYTES for out in line.sent)
    assert all(len(out.frame.pcm) == FRAME_BYTES for out in line.sent)
    wire = b"".join(out.wire or b"" for out in line.sent)
    # The voice's own μ-law, byte for byte, from the greeting's first frame on.
    voice = ToneTTS(ToneTTSConfig(speaks_mulaw=True, first_audio_delay=0))
    expected = b"".join([chunk.pcm async for chunk in voice.synthesize_for("Hello there caller.", "mulaw/8000")])
    assert wire.startswith(expected)
    # The internal copy (recording, accounting) is the same audio at 16 kHz.
    first = np.frombuffer(line.sent[0].frame.pcm, "<i2")[0::2]
    assert np.array_equal(first, np.frombuffer(mulaw_decode(line.sent[0].wire or b""), "<i2"))


async def test_a_voice_without_mulaw_gives_pcm_for_the_transport_to_encode() -> None:
    line = await call_on_a_phone_line(speaks_mulaw=False)
    assert line.sent and all(out.wire is None for out in line.sent)
