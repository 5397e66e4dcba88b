"""Pipecat's side of the side-by-side benchmark: N concurrent calls in this process, each a
Pipecat pipeline built with its public API (transport in -> STT -> user aggregator with Silero
VAD -> LLM -> TTS -> transport out -> assistant aggregator), fed the caller recording at real
time; per-call listener records written as JSON, in the same form as voiceflow's side.

Runs in its own venv with pipecat-ai installed (``run.py`` makes it; pipecat is never a
dependency of voiceflow). By hand:

    ~/.cache/voiceflow-bench/pipecat/bin/python benchmarks/pipecat_side_by_side/pipecat_side.py \
        10 caller.wav out.json

The fakes have the same delays as voiceflow's (common.py): a segmented STT whose final comes
STT_DELAY after the VAD's end of speech, an LLM whose first token comes LLM_FIRST_TOKEN after
the context and the rest LLM_TOKEN_GAP apart, a voice whose first 20 ms come TTS_FIRST_AUDIO
after its text and the rest at real time. Everything else is Pipecat's default, except the
turn's end: SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0) ends it when the final
transcript arrives, as voiceflow's ``min_silence`` equal to the VAD's stop window does (the
default, the Smart Turn model, would add its own inference and verdicts to the comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

import numpy as np
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings, STTSettings, TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - shared with voiceflow's side


class FakeSTT(SegmentedSTTService):
    """The final transcript STT_DELAY after the VAD's end of speech (Pipecat hands a segmented
    STT its segment at that edge)."""

    def __init__(self) -> None:
        super().__init__(settings=STTSettings(model=None, language=None))

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        await asyncio.sleep(common.STT_DELAY)
        yield TranscriptionFrame(common.TRANSCRIPT, "", time_now_iso8601(), finalized=True)


class FakeLLM(LLMService):
    """The reply's words as tokens: the first LLM_FIRST_TOKEN after the context, then one every
    LLM_TOKEN_GAP."""

    def __init__(self) -> None:
        super().__init__(settings=LLMSettings(
            model=None, system_instruction=None, temperature=None, max_tokens=None, top_p=None,
            top_k=None, frequency_penalty=None, presence_penalty=None, seed=None,
            filter_incomplete_user_turns=False, user_turn_completion_config=None))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_frame(LLMFullResponseStartFrame())
            try:
                await asyncio.sleep(common.LLM_FIRST_TOKEN)
                for i, word in enumerate(common.REPLY.split(" ")):
                    if i:
                        await asyncio.sleep(common.LLM_TOKEN_GAP)
                    await self.push_frame(LLMTextFrame(word if i == 0 else " " + word))
            finally:
                await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class FakeTTS(TTSService):
    """The tone: first 20 ms TTS_FIRST_AUDIO after the text, the rest at real time."""

    def __init__(self) -> None:
        super().__init__(push_start_frame=True, push_stop_frames=True, sample_rate=common.TTS_RATE,
                         settings=TTSSettings(model="tone", voice="tone", language=None))

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        loop = asyncio.get_running_loop()
        samples = common.tone(len(text) * common.TTS_SECONDS_PER_CHAR)
        step = round(common.TTS_CHUNK * common.TTS_RATE)
        first = loop.time() + common.TTS_FIRST_AUDIO
        for i, start in enumerate(range(0, len(samples), step)):
            await asyncio.sleep(max(0.0, first + i * common.TTS_CHUNK - loop.time()))
            yield TTSAudioRawFrame(samples[start : start + step].tobytes(), common.TTS_RATE, 1,
                                   context_id=context_id)


class BenchInput(BaseInputTransport):
    """The caller's audio at real time, 20 ms frames, each once all of it has arrived."""

    def __init__(self, params: TransportParams, pcm: bytes, listener: common.Listener,
                 done: asyncio.Event) -> None:
        super().__init__(params)
        self._pcm = pcm
        self._listener = listener
        self._done = done
        self._feeder: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._feeder is None:
            self._feeder = self.create_task(self._feed(), "bench-feed")

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = self._listener.t0 = loop.time()
        for i, pcm in enumerate(common.frames(self._pcm)):
            due = t0 + (i + 1) * common.FRAME
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._listener.caller_frame(due, loop.time())
            await self.push_audio_frame(InputAudioRawFrame(pcm, common.RATE, 1))
        self._done.set()


class BenchOutput(BaseOutputTransport):
    """Plays on a real-time clock: a chunk starts when the one before it has played (or at once,
    after an underrun); the listener hears it from its start."""

    def __init__(self, params: TransportParams, listener: common.Listener) -> None:
        super().__init__(params)
        self._listener = listener
        self._cursor = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._cursor)
        await asyncio.sleep(max(0.0, start - loop.time()))
        self._listener.played(start, frame.audio, frame.sample_rate)
        self._cursor = start + len(frame.audio) / 2 / frame.sample_rate
        return True


class BenchTransport(BaseTransport):
    def __init__(self, pcm: bytes, listener: common.Listener, done: asyncio.Event) -> None:
        super().__init__()
        params = TransportParams(audio_in_enabled=True, audio_out_enabled=True,
                                 audio_in_sample_rate=common.RATE, audio_out_sample_rate=common.RATE)
        self._input = BenchInput(params, pcm, listener, done)
        self._output = BenchOutput(params, listener)

    def input(self) -> FrameProcessor:
        return self._input

    def output(self) -> FrameProcessor:
        return self._output


class EdgeProbe(FrameProcessor):
    """Notes when the VAD's end of speech, as the user aggregator broadcasts it, reaches the
    processor after the aggregator (where the LLM would see it)."""

    def __init__(self, listener: common.Listener) -> None:
        super().__init__()
        self._listener = listener

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            self._listener.vad_end(asyncio.get_running_loop().time())
        await self.push_frame(frame, direction)


def build(pcm: bytes, listener: common.Listener, done: asyncio.Event) -> PipelineWorker:
    transport = BenchTransport(pcm, listener, done)
    context = LLMContext([{"role": "system", "content": "Be brief."}])
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        vad_analyzer=SileroVADAnalyzer(),
        user_turn_strategies=UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)]),
    ))
    pipeline = Pipeline([
        transport.input(), FakeSTT(), aggregators.user(), EdgeProbe(listener), FakeLLM(), FakeTTS(),
        transport.output(), aggregators.assistant(),
    ])
    return PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=common.RATE,
                                                          audio_out_sample_rate=common.RATE))


async def run(n: int, pcm: bytes, out: Path) -> None:
    listeners = [common.Listener() for _ in range(n)]
    # One pipeline built and kept before the baseline, so first-use costs (onnxruntime's
    # start-up, lazy imports) are not counted as the calls' memory.
    warm = build(pcm, common.Listener(), asyncio.Event())
    common.tone(0.0)  # the fake voice's tone is made once, before any call waits for it
    meter = common.ProcessMeter()
    # The calls' pipelines are built before any call starts (each loads its own Silero model,
    # ~40 ms): building them as the calls arrive would stall the loop that carries the calls
    # already talking, which is a start-up cost, not the per-call cost measured here. Their
    # memory counts; the CPU time of building them does not.
    dones = [asyncio.Event() for _ in range(n)]
    workers = [build(pcm, listeners[i], dones[i]) for i in range(n)]
    meter.begin()
    runner = WorkerRunner(handle_sigint=False)

    async def call(i: int) -> None:
        await asyncio.sleep(common.FRAME * i / n)  # calls arrive at random phases of a frame
        await runner.add_workers(workers[i])
        await dones[i].wait()  # the caller's audio has all been heard: hang up
        await workers[i].cancel()

    runner_task = asyncio.create_task(runner.run(auto_end=False))
    await asyncio.gather(*(call(i) for i in range(n)))
    await runner.cancel()
    await runner_task
    figures = meter.stop()
    del warm
    common.write_result(out, "pipecat", n, figures, [listener.as_record() for listener in listeners])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calls", type=int)
    parser.add_argument("caller", type=Path, help="the caller's audio (WAV, 16 kHz mono PCM16)")
    parser.add_argument("out", type=Path, help="where the per-call records go (JSON)")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    np.seterr(all="ignore")
    asyncio.run(run(args.calls, common.read_recording(args.caller).tobytes(), args.out))


if __name__ == "__main__":
    main()
