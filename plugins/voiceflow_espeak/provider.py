"""The espeak-ng TTS provider.

``espeak_Synth`` is one blocking call that hands out audio through a callback, while
:func:`voiceflow.compute.iterate_in_thread` wants a generator. So the producer thread starts a
second thread that runs the synthesis and pushes each buffer into a queue, and the generator
yields from the queue as buffers arrive: the first ~50 ms of audio reaches the event loop before
the rest of the clause is synthesised. When the consumer stops, the callback sees the flag and
aborts espeak-ng within one buffer; the generator waits for the synthesis thread before it
returns, so the process lock is free again by the time the next request starts.
"""

from __future__ import annotations

import queue
import threading
import typing
from collections.abc import AsyncIterator, Iterator

import anyio

from voiceflow.compute import StopFlag, iterate_in_thread, run_in_thread
from voiceflow.frames import TTSAudio
from voiceflow.providers import ProviderError, ProviderUnavailable, TTSProvider
from voiceflow_espeak import engine
from voiceflow_espeak.config import EspeakConfig

_DONE = object()


class EspeakTTS(TTSProvider[EspeakConfig]):
    """Instant, robotic TTS in-process via espeak-ng (the fallback voice)."""

    name = "espeak"
    config_model = EspeakConfig

    def __init__(self, config: EspeakConfig) -> None:
        super().__init__(config)
        self._limiter = anyio.CapacityLimiter(1)
        self._sample_rate = 0

    async def prepare(self) -> None:
        """Initialise libespeak-ng (once per process) and check that the voice exists."""
        try:
            self._sample_rate = await run_in_thread(engine.engine_sample_rate, abandon_on_cancel=True)
            await run_in_thread(self._check_voice)
        except engine.EspeakError as exc:
            raise ProviderUnavailable(f"espeak: {exc}") from exc

    def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        """Stream PCM16 audio at 22,050 Hz, one buffer (~50 ms) or more per chunk."""
        return iterate_in_thread(lambda stop: self._chunks(text, stop), limiter=self._limiter, name="espeak")

    def _check_voice(self) -> None:
        engine.synthesize("", self.config.voice, self.config.rate, self.config.pitch, lambda _: True)

    def _chunks(self, text: str, stop: StopFlag) -> Iterator[TTSAudio]:
        if not self._sample_rate:
            raise ProviderError("espeak: synthesize() called before prepare()")
        buffers: queue.SimpleQueue[object] = queue.SimpleQueue()
        abort = threading.Event()

        def on_audio(pcm: bytes) -> bool:
            buffers.put(pcm)
            return abort.is_set() or stop.is_set()

        def run() -> None:
            config = self.config
            try:
                engine.synthesize(text, config.voice, config.rate, config.pitch, on_audio)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the producer thread
                buffers.put(exc)
            finally:
                buffers.put(_DONE)

        worker = threading.Thread(target=run, name="espeak-synth", daemon=True)
        worker.start()
        try:
            done = False
            while not done:
                pending = [buffers.get()]
                while not buffers.empty():  # coalesce whatever piled up while the loop was busy
                    pending.append(buffers.get())
                audio = bytearray()
                for item in pending:
                    if item is _DONE:
                        done = True
                    elif isinstance(item, engine.EspeakError):
                        raise ProviderError(f"espeak: {item}") from item
                    elif isinstance(item, BaseException):
                        raise item
                    else:
                        audio += typing.cast(bytes, item)
                if audio:
                    yield TTSAudio(bytes(audio), self._sample_rate)
        finally:
            abort.set()
            worker.join()
