"""One agent reply: text → clauses → TTS → transport, and what the caller actually heard.

The reply runs as tasks inside a cancel scope owned by the turn manager. Barge-in cancels that
scope: the LLM stream, the TTS stream and the queued audio stop together, and
:meth:`Reply.heard_text` — built from the transport's playback marks, not from what was generated —
is what goes into the conversation context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from voiceflow.audio import Resampler
from voiceflow.clock import Clock
from voiceflow.config.models import Chunking
from voiceflow.frames import FRAME_BYTES, AudioFrame, TTSAudio
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.providers import CallTransport, OutFrame, TTSProvider
from voiceflow.runtime.chain import Chain
from voiceflow.runtime.chunker import ClauseChunker


@dataclass
class Clause:
    text: str
    queued: int = 0
    heard: int = 0
    complete: bool = False


@dataclass
class Reply:
    """Bookkeeping of one reply, updated from the transport's playback marks."""

    id: int
    kind: str
    interruptible: bool
    timeline: TurnTimeline
    on_first_heard: Callable[[Reply], None] | None = None
    clauses: list[Clause] = field(default_factory=list)
    generated: str = ""
    all_queued: bool = False
    first_heard: float | None = None
    finished: anyio.Event = field(default_factory=anyio.Event)
    gate: anyio.Event | None = None
    """While set and not yet open, audio is prepared but held back (a preemptive reply waits for
    the caller's turn to be confirmed over)."""

    def played(self, clause_index: int, through: int, t: float) -> None:
        clause = self.clauses[clause_index]
        clause.heard = max(clause.heard, through)
        if self.first_heard is None:
            self.first_heard = t
            self.timeline.mark_once("first_audio_out", t)
            if self.on_first_heard is not None:
                self.on_first_heard(self)
        self._check_finished(t)

    def _check_finished(self, t: float) -> None:
        if self.all_queued and all(c.complete and c.heard >= c.queued for c in self.clauses):
            self.timeline.mark_once("reply_heard", t)
            self.finished.set()

    def heard_text(self) -> str:
        """The words the caller heard: whole clauses, plus the heard share of a cut one."""
        parts: list[str] = []
        for clause in self.clauses:
            if clause.queued == 0 or clause.heard == 0:
                break
            if clause.complete and clause.heard >= clause.queued:
                parts.append(clause.text)
                continue
            words = clause.text.split()
            share = round(len(words) * clause.heard / clause.queued)
            if share:
                parts.append(" ".join(words[:share]) + "…")
            break
        return " ".join(parts)


@dataclass
class ReplyPipeline:
    """What a reply needs from its session: the TTS chain, the transport, the clock, settings."""

    tts: Chain[TTSProvider[Any]]
    transport: CallTransport
    clock: Clock
    chunking: Chunking

    async def speak(self, reply: Reply, text: AsyncIterator[str]) -> None:
        """Speak streamed ``text``; returns once the caller has heard all of it."""
        send, receive = anyio.create_memory_object_stream[str](64)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._chunk, reply, text, send)
            await self._synthesize(reply, receive)
        reply.all_queued = True
        if not reply.clauses:
            reply.finished.set()
        reply._check_finished(self.clock.now())
        await reply.finished.wait()

    async def _chunk(self, reply: Reply, text: AsyncIterator[str], out: ObjectSendStream[str]) -> None:
        chunker = ClauseChunker(self.chunking)
        max_wait = self.chunking.first_clause_max_wait
        first_delta: float | None = None
        async with out, aclosing(text) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                reply.generated += delta
                first_delta = self.clock.now() if first_delta is None else first_delta
                for clause in chunker.push(delta):
                    reply.timeline.mark_once("first_clause", self.clock.now())
                    await out.send(clause)
                if chunker.emitted == 0 and max_wait is not None and self.clock.now() - first_delta >= max_wait:
                    forced = chunker.cut_at_word(self.chunking.first_clause_min_words)
                    if forced is not None:
                        reply.timeline.mark_once("first_clause", self.clock.now())
                        await out.send(forced)
            for clause in chunker.flush():
                reply.timeline.mark_once("first_clause", self.clock.now())
                await out.send(clause)

    async def _synthesize(self, reply: Reply, clauses: ObjectReceiveStream[str]) -> None:
        async with clauses:
            async for text in clauses:
                reply.clauses.append(Clause(text))
                await self._speak_clause(reply, len(reply.clauses) - 1)

    async def _speak_clause(self, reply: Reply, index: int) -> None:
        clause = reply.clauses[index]
        reply.timeline.mark_once("tts_request", self.clock.now())
        framer = _Framer()
        audio = self.tts.stream(lambda provider: provider.synthesize(clause.text))
        async with aclosing(audio):
            async for chunk in audio:
                reply.timeline.mark_once("tts_first_audio", self.clock.now())
                for pcm in framer.push(chunk):
                    await self._play(reply, index, pcm)
        for pcm in framer.finish():
            await self._play(reply, index, pcm)
        clause.complete = True

    async def _play(self, reply: Reply, index: int, pcm: bytes) -> None:
        if reply.gate is not None:
            await reply.gate.wait()
        clause = reply.clauses[index]
        clause.queued += len(pcm) // 2
        await self.transport.play(OutFrame(AudioFrame(pcm), (reply, index, clause.queued)))


class _Framer:
    """TTS chunks at any rate and size → 20 ms frames at the internal rate."""

    def __init__(self) -> None:
        self._resampler: Resampler | None = None
        self._pending = bytearray()

    def push(self, chunk: TTSAudio) -> list[bytes]:
        if self._resampler is None or self._resampler.in_rate != chunk.sample_rate:
            tail = self._resampler.process(b"", last=True) if self._resampler else b""
            self._pending += tail
            self._resampler = Resampler(chunk.sample_rate)
        self._pending += self._resampler.process(chunk.pcm)
        return self._take()

    def finish(self) -> list[bytes]:
        if self._resampler is not None:
            self._pending += self._resampler.process(b"", last=True)
        frames = self._take()
        if self._pending:
            frames.append(bytes(self._pending) + b"\0" * (FRAME_BYTES - len(self._pending)))
            self._pending.clear()
        return frames

    def _take(self) -> list[bytes]:
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        frames = [bytes(self._pending[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]
        del self._pending[:whole]
        return frames
