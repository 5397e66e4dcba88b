"""voiceflow's side of the side-by-side benchmark: N concurrent calls in this process, each a full
voiceflow session (real Silero VAD, the turn manager, the reply pipeline, playout), answering
the caller recording at real time; per-call listener records written as JSON.

Run by ``run.py`` in voiceflow's venv; by hand:

    .venv/bin/python benchmarks/pipecat_side_by_side/voiceflow_side.py 10 caller.wav out.json

STT and LLM are voiceflow.testing's scripted fakes with the issue's delays; the voice is a tone
that, like a streaming TTS, sends its first 20 ms 100 ms after it was asked and the rest at real
time (a plugin registered here through the public hooks, as a third party would).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import anyio
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - shared with the Pipecat side, which runs in another venv

from voiceflow.audio import read_wav  # noqa: E402
from voiceflow.clock import RealClock, current_clock  # noqa: E402
from voiceflow.config.base import ProviderConfig  # noqa: E402
from voiceflow.config.loader import parse_agent  # noqa: E402
from voiceflow.frame_queue import FrameQueue  # noqa: E402
from voiceflow.frames import FRAME_SECONDS, AudioFrame, TTSAudio  # noqa: E402
from voiceflow.logging import configure_logging  # noqa: E402
from voiceflow.plugins.hookspecs import hookimpl  # noqa: E402
from voiceflow.plugins.registry import PluginRegistry  # noqa: E402
from voiceflow.providers import CallTransport, OutFrame, PlayedCallback, TTSProvider  # noqa: E402
from voiceflow.runtime.pool import ProviderPool  # noqa: E402
from voiceflow.runtime.runner import prepare  # noqa: E402
from voiceflow.runtime.session import Session  # noqa: E402
from voiceflow.serving.command import loop_options  # noqa: E402
from voiceflow.serving.memory import settle_after_start  # noqa: E402
from voiceflow.serving.server import GIL_SWITCH_INTERVAL, quick_gil_handoff  # noqa: E402
from voiceflow.testing import fakes  # noqa: E402

AGENT: dict[str, Any] = {
    "name": "side-by-side",
    "prompt": {"system": "Be brief."},
    "transport": {"provider": "file"},
    "vad": [{"provider": "silero"}],  # defaults: stop_secs 0.2 (common.STOP_WINDOW)
    # The turn ends when the final transcript is in, as with Pipecat's speech-timeout strategy
    # set to 0: the silence floor is the VAD's own stop window. Pipecat has no transcript rules;
    # voiceflow's would (rightly) wait 1.2 s after "five five" for more digits.
    "turn_taking": {"endpointing": {"min_silence": common.STOP_WINDOW,
                                    "transcript_rules": {"enabled": False}}},
    "stt": [{"provider": "scripted-stt", "lines": [common.TRANSCRIPT], "delay": common.STT_DELAY}],
    "llm": [{"provider": "scripted-llm", "replies": [common.REPLY],
             "first_token_delay": common.LLM_FIRST_TOKEN, "token_delay": common.LLM_TOKEN_GAP}],
    "tts": [{"provider": "paced-tone"}],
}


class PacedToneConfig(ProviderConfig):
    provider: Literal["paced-tone"] = "paced-tone"


class PacedTone(TTSProvider[PacedToneConfig]):
    """The fake voice: first 20 ms after TTS_FIRST_AUDIO, then one 20 ms chunk every 20 ms."""

    name = "paced-tone"
    config_model = PacedToneConfig

    async def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        clock = current_clock()
        samples = common.tone(len(text) * common.TTS_SECONDS_PER_CHAR)
        step = round(common.TTS_CHUNK * common.TTS_RATE)
        first = clock.now() + common.TTS_FIRST_AUDIO
        for i, start in enumerate(range(0, len(samples), step)):
            await clock.sleep_until(first + i * common.TTS_CHUNK)
            yield TTSAudio(samples[start : start + step].tobytes(), common.TTS_RATE)


class Plugin:
    @staticmethod
    @hookimpl
    def register_providers(register: Any) -> None:
        register(PacedTone)


class BenchCall(CallTransport):
    """Caller audio in at real time, agent audio out on a 20 ms playout clock (as the file
    transport does), every played frame reported to the listener when it starts playing."""

    caller_audio_end_is_hangup = True

    def __init__(self, pcm: bytes, listener: common.Listener) -> None:
        self.call_id = "bench"
        self._pcm = pcm
        self._listener = listener
        self._out = FrameQueue[OutFrame](50)
        self._played: PlayedCallback = lambda mark, t: None
        self._flushes = 0
        self._playing = anyio.Event()
        self._playing.set()
        self._cursor = 0.0

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        clock = current_clock()
        t0 = self._listener.t0 = clock.now()
        for i, pcm in enumerate(common.frames(self._pcm)):
            t = t0 + i * FRAME_SECONDS
            await clock.sleep_until(t + FRAME_SECONDS)  # a frame exists once all of it has arrived
            self._listener.caller_frame(t + FRAME_SECONDS, clock.now())
            yield AudioFrame(pcm, t)

    async def play(self, out: OutFrame) -> None:
        await self._out.send(out)

    def flush(self) -> None:
        self._flushes += 1
        self._playing.set()
        self._out.clear()

    def pause(self) -> bool:
        if self._playing.is_set():
            self._playing = anyio.Event()
        return True

    def resume(self) -> None:
        self._playing.set()

    def on_played(self, callback: PlayedCallback) -> None:
        self._played = callback

    async def run(self) -> None:
        clock = current_clock()
        async for out in self._out:
            flushes = self._flushes
            now = clock.now()
            start = max(now, self._cursor)
            if start > now:  # a frame already due plays now, without another trip through the loop
                await clock.sleep_until(start)
            while not self._playing.is_set() and flushes == self._flushes:
                await self._playing.wait()
                start = max(clock.now(), self._cursor)
            if flushes != self._flushes:
                continue
            self._listener.played(start, out.frame.pcm, common.RATE)
            self._cursor = start + out.frame.duration
            self._played(out.mark, start)

    def close(self) -> None:
        self._out.close()


async def run(n: int, pcm: bytes, out: Path) -> None:
    registry = PluginRegistry(plugins=[fakes, Plugin])
    # The scripted recogniser's lines are shared by every call of the process: enough for all.
    stt = [{**AGENT["stt"][0], "lines": [common.TRANSCRIPT] * (4 * n)}]
    agent = parse_agent(yaml.safe_dump({**AGENT, "stt": stt}), "side-by-side.yaml", registry)
    pool = ProviderPool(registry)
    await prepare(agent, pool)
    settle_after_start()  # as `voiceflow serve` does once its agents are loaded
    listeners = [common.Listener() for _ in range(n)]
    common.tone(0.0)  # the fake voice's tone is made once, before any call waits for it

    async def call(i: int) -> None:
        await anyio.sleep(FRAME_SECONDS * i / n)  # calls arrive at random phases of a frame
        transport = BenchCall(pcm, listeners[i])
        try:
            result = await Session(agent, pool, transport, RealClock()).run()
        finally:
            transport.close()
        for turn in result.timeline.turns:
            # The wall-clock moment the turn manager took the VAD's end edge (and asked the
            # recogniser for its final): what it acts on, delays of a busy loop included.
            if "stt_finalize" in turn.marks:
                listeners[i].vad_end(turn.marks["stt_finalize"])

    meter = common.ProcessMeter()
    with quick_gil_handoff(GIL_SWITCH_INTERVAL):  # as `voiceflow serve` does
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(call, i)
    figures = meter.stop()
    common.write_result(out, "voiceflow", n, figures, [listener.as_record() for listener in listeners])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calls", type=int)
    parser.add_argument("caller", type=Path, help="the caller's audio (WAV, 16 kHz mono PCM16)")
    parser.add_argument("out", type=Path, help="where the per-call records go (JSON)")
    args = parser.parse_args()
    configure_logging("console", "error")
    # The event loop `voiceflow serve` runs its calls on (uvloop where installed).
    anyio.run(run, args.calls, read_wav(args.caller), args.out, backend_options=loop_options())


if __name__ == "__main__":
    main()
