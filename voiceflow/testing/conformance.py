"""A conformance suite a plugin author runs against their own provider.

Each ``check_*`` coroutine drives a prepared provider the way the runtime will and raises
:class:`ConformanceError` with a plain explanation when it falls short: it must stream (more
than one item, the first well before the last), stop promptly when the runtime cancels it
(barge-in), and serve the next request after a cancellation. They return the measured figures so
a plugin's own tests can put bounds on them::

    async def test_my_tts_conforms():
        tts = MyTTS(MyTTSConfig())
        await tts.prepare()
        report = await check_tts(tts)
        assert report.ttfb < 0.3
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from voiceflow.audio import split_frames
from voiceflow.clock import RealClock, using_clock
from voiceflow.frames import AudioFrame, Message, Transcript, TTSAudio, VADKind
from voiceflow.providers import LLMProvider, STTProvider, TTSProvider, VADProvider
from voiceflow.tasks import create_task_group

T = TypeVar("T")


class ConformanceError(AssertionError):
    """The provider does not behave as the runtime needs."""


@dataclass(frozen=True, slots=True)
class StreamReport:
    ttfb: float
    total: float
    items: int
    cancel_latency: float
    restart_ttfb: float


async def _measure(make: Callable[[], AsyncIterator[T]], timeout: float) -> tuple[list[T], float, float]:
    started = anyio.current_time()
    items: list[T] = []
    first = 0.0
    with anyio.fail_after(timeout):
        async with aclosing(make()) as stream:  # type: ignore[type-var]
            async for item in stream:
                if not items:
                    first = anyio.current_time() - started
                items.append(item)
    return items, first, anyio.current_time() - started


@dataclass(frozen=True, slots=True)
class Cancelled:
    """When a stream's consumer was cancelled (``time.monotonic()``, the clock the fake servers
    stamp their records with) and how long the stream took to stop."""

    at: float
    latency: float


async def cancel_after_first(make: Callable[[], AsyncIterator[Any]], *, timeout: float = 30.0) -> Cancelled:
    """Start a stream, take one item, cancel the consumer as barge-in does; time the stop.

    Plugin tests use it to check what their server saw after a barge-in (a disconnect, a
    ``Clear``) against :attr:`Cancelled.at`.
    """
    got_first = anyio.Event()
    cancelled_at = 0.0

    async def consume() -> None:
        async with aclosing(make()) as stream:  # type: ignore[type-var]
            async for _ in stream:
                got_first.set()

    with anyio.fail_after(timeout):
        async with create_task_group() as tg:
            tg.start_soon(consume)
            await got_first.wait()
            cancelled_at = time.monotonic()
            tg.cancel_scope.cancel()
    return Cancelled(cancelled_at, time.monotonic() - cancelled_at)


async def _check_stream(
    kind: str, make: Callable[[], AsyncIterator[Any]], *, timeout: float, cancel_within: float, min_items: int
) -> tuple[StreamReport, list[Any]]:
    with using_clock(RealClock()):
        items, ttfb, total = await _measure(make, timeout)
        if len(items) < min_items:
            raise ConformanceError(f"{kind} produced {len(items)} item(s); it must stream (≥ {min_items})")
        cancel_latency = (await cancel_after_first(make, timeout=timeout)).latency
        if cancel_latency > cancel_within:
            raise ConformanceError(f"{kind} took {cancel_latency:.3f} s to stop after cancellation (limit {cancel_within} s)")
        again, restart_ttfb, _ = await _measure(make, timeout)
        if not again:
            raise ConformanceError(f"{kind} produced nothing on the request after a cancellation")
    return StreamReport(ttfb, total, len(items), cancel_latency, restart_ttfb), items


async def check_llm(
    llm: LLMProvider[Any], *, timeout: float = 30.0, cancel_within: float = 0.5, min_items: int = 3
) -> StreamReport:
    messages = [
        Message("system", "You are a helpful assistant."),
        Message("user", "Count from one to twenty in words, separated by commas."),
    ]
    report, deltas = await _check_stream(
        "LLM", lambda: llm.stream(messages), timeout=timeout, cancel_within=cancel_within, min_items=min_items
    )
    if not all(isinstance(d, str) for d in deltas) or not "".join(deltas).strip():
        raise ConformanceError("LLM deltas must be non-empty text")
    return report


async def check_tts(
    tts: TTSProvider[Any],
    *,
    text: str = "This is a longer sentence, with a pause or two, so that a streaming voice "
    "has the chance to send its first audio well before the last. And then another one.",
    timeout: float = 30.0,
    cancel_within: float = 0.5,
    min_items: int = 2,
) -> StreamReport:
    report, chunks = await _check_stream(
        "TTS", lambda: tts.synthesize(text), timeout=timeout, cancel_within=cancel_within, min_items=min_items
    )
    for chunk in chunks:
        if not isinstance(chunk, TTSAudio) or chunk.sample_rate <= 0 or len(chunk.pcm) % 2:
            raise ConformanceError("TTS chunks must be TTSAudio with whole 16-bit samples and a sample rate")
    if not any(any(chunk.pcm) for chunk in chunks):
        raise ConformanceError("TTS produced only silence")
    return report


async def check_stt(stt: STTProvider[Any], speech: bytes, *, timeout: float = 30.0) -> Transcript:
    """Feed 16 kHz PCM16 speech, finalize, and return the final transcript (must be non-empty)."""
    with using_clock(RealClock()), anyio.fail_after(timeout):
        stream = await stt.open_stream()
        try:
            stream.speech_started(0.0)
            for i, pcm in enumerate(split_frames(speech)):
                await stream.send(AudioFrame(pcm, i * 0.02))
            await stream.finalize()
            async for transcript in stream.transcripts():
                if transcript.is_final:
                    if not transcript.text.strip():
                        raise ConformanceError("STT returned an empty final for speech")
                    return transcript
        finally:
            await stream.aclose()
    raise ConformanceError("STT ended its transcripts without a final")


def check_vad(vad: VADProvider[Any], speech: bytes) -> tuple[float, float]:
    """Feed speech padded with silence; expect exactly one start then one end. Returns their times."""
    stream = vad.create_stream()
    pad = b"\0\0" * 16_000
    events = [e for i, pcm in enumerate(split_frames(pad + speech + pad))
              if (e := stream.process(AudioFrame(pcm, i * 0.02))) is not None]
    kinds = [e.kind for e in events]
    if kinds != [VADKind.SPEECH_START, VADKind.SPEECH_END]:
        raise ConformanceError(f"VAD should give one start and one end for one utterance, gave {kinds}")
    start, end = events[0].t, events[1].t
    if not (0.9 <= start < end <= 1.0 + len(speech) / 32_000 + 0.1):
        raise ConformanceError(f"VAD edges {start:.2f}–{end:.2f} s are outside the speech")
    return start, end
