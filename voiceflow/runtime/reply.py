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
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from voiceflow.clock import Clock
from voiceflow.config.models import Chunking
from voiceflow.frames import SAMPLE_RATE, AudioFrame, TTSAudio
from voiceflow.g711 import MULAW_RATE
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.providers import CallTransport, OutFrame, TTSProvider
from voiceflow.runtime.chain import BadItem, Chain, StageFailed
from voiceflow.runtime.chunker import ClauseChunker
from voiceflow.runtime.framer import Framer
from voiceflow.tasks import create_task_group

log = structlog.get_logger("voiceflow.reply")


class ClauseBreak:
    """Yielded between a reply's text deltas: say what is pending now, without waiting for the
    clause to end (the reply is about to pause, e.g. while a tool runs)."""


CLAUSE_BREAK = ClauseBreak()

ReplyText = AsyncIterator["str | ClauseBreak"]


@dataclass
class Clause:
    text: str
    queued: int = 0
    heard: int = 0
    complete: bool = False
    alignment: list[tuple[int, int]] | None = field(default_factory=list)
    """From the voice's :class:`~voiceflow.frames.TextMark`: (samples into the clause's audio,
    characters of its text spoken by then). ``None`` once it cannot be trusted (another voice
    took over mid-clause); the heard share is then estimated."""

    def heard_share(self) -> str:
        """The words of a clause cut off after :attr:`heard` samples."""
        if self.alignment:
            spoken = max((chars for at, chars in self.alignment if at <= self.heard), default=0)
            said = self.text[:spoken]
            if spoken < len(self.text) and not self.text[spoken].isspace():
                said = said.rsplit(None, 1)[0] if len(said.split()) > 1 else ""  # a word half said
            return said.strip()
        words = self.text.split()
        return " ".join(words[: round(len(words) * self.heard / self.queued)])


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
    drained: anyio.Event | None = None
    """Set once everything queued so far has been heard (waited for after a failure)."""
    tts_from: int = 0
    """Where in the TTS chain this reply's next clause starts: once a provider failed, the rest
    of the reply goes to the one that took over, without waiting out the broken one again."""

    def played(self, clause_index: int, through: int, t: float) -> None:
        clause = self.clauses[clause_index]
        clause.heard = max(clause.heard, through)
        if self.first_heard is None:
            self.first_heard = t
            self.timeline.mark_once("first_audio_out", t)
            if self.on_first_heard is not None:
                self.on_first_heard(self)
        self._check_finished(t)
        if self.drained is not None and all(c.heard >= c.queued for c in self.clauses):
            self.drained.set()

    def _check_finished(self, t: float) -> None:
        if self.all_queued and all(c.complete and c.heard >= c.queued for c in self.clauses):
            self.timeline.mark_once("reply_heard", t)
            self.finished.set()

    def spoken_so_far(self) -> str:
        """The clauses the caller has begun to hear, whole (what an echo of the agent's voice
        could contain: a recogniser may be a word ahead of the playback estimate)."""
        return " ".join(clause.text for clause in self.clauses if clause.heard > 0)

    def heard_text(self) -> str:
        """The words the caller heard: whole clauses, plus the heard share of a cut one."""
        parts: list[str] = []
        for clause in self.clauses:
            if clause.queued == 0 or clause.heard == 0:
                break
            if clause.complete and clause.heard >= clause.queued:
                parts.append(clause.text)
                continue
            share = clause.heard_share()
            if share:
                parts.append(share + "…")
            break
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class PlaybackMark:
    """What a frame of agent audio carries through the transport and back once it is heard:
    which reply, which clause, and how many of the clause's samples that makes heard."""

    reply: Reply
    clause: int
    through: int
    pcm: bytes = b""
    """The frame's audio (the same bytes, not a copy): the echo canceller's reference."""

    def heard(self, t: float) -> None:
        self.reply.played(self.clause, self.through, t)


@dataclass
class ReplyPipeline:
    """What a reply needs from its session: the TTS chain, the transport, the clock, settings."""

    tts: Chain[TTSProvider[Any]]
    transport: CallTransport
    clock: Clock
    chunking: Chunking

    async def speak(self, reply: Reply, text: ReplyText) -> None:
        """Speak streamed ``text``; returns once the caller has heard all of it.

        If a stage fails, the audio already queued still plays out before the failure is
        reported: the caller hears the words they were going to hear anyway, the heard text is
        then true, and the apology follows them instead of talking over them.
        """
        send, receive = anyio.create_memory_object_stream[str](64)
        try:
            async with create_task_group() as tg:
                tg.start_soon(self._chunk, reply, text, send)
                await self._synthesize(reply, receive)
        except Exception:
            await self._play_out(reply)
            raise
        reply.all_queued = True
        if not reply.clauses:
            reply.finished.set()
        reply._check_finished(self.clock.now())
        await reply.finished.wait()

    async def _play_out(self, reply: Reply) -> None:
        pending = sum(c.queued - c.heard for c in reply.clauses)
        if pending <= 0:
            return
        reply.drained = anyio.Event()
        async with create_task_group() as tg:

            async def give_up() -> None:  # a transport that stopped playing must not hold us
                await self.clock.sleep(pending / SAMPLE_RATE + 1.0)
                tg.cancel_scope.cancel()

            tg.start_soon(give_up)
            await reply.drained.wait()
            tg.cancel_scope.cancel()

    async def _chunk(self, reply: Reply, text: ReplyText, out: ObjectSendStream[str]) -> None:
        chunker = ClauseChunker(self.chunking)
        max_wait = self.chunking.first_clause_max_wait
        first_delta: float | None = None
        async with out, aclosing(text) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                if isinstance(delta, ClauseBreak):
                    for clause in chunker.flush():
                        reply.timeline.mark_once("first_clause", self.clock.now())
                        await out.send(clause)
                    continue
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
        """Speak one clause; if the TTS dies mid-clause, the next provider says the rest of it."""
        clause = reply.clauses[index]
        reply.timeline.mark_once("tts_request", self.clock.now())
        text = clause.text

        def served(provider_index: int) -> None:
            reply.tts_from = provider_index

        while text:
            framer = Framer()
            start, offset = clause.queued, clause.text.find(text)
            if offset < 0:
                clause.alignment = None
            audio = self.tts.stream(
                _synthesis(text, self.transport.wire_format),
                first=reply.tts_from, check=check_tts_audio, nonempty=True, served=served,
                substantive=_has_audio,
            )
            limit = runaway_seconds(text)
            try:
                async with aclosing(audio):
                    async for chunk in audio:
                        reply.timeline.mark_once("tts_first_audio", self.clock.now())
                        if chunk.marks and clause.alignment is not None:
                            clause.alignment += [
                                (start + round(mark.at * SAMPLE_RATE), offset + mark.chars) for mark in chunk.marks
                            ]
                        for pcm, wire in framer.push(chunk):
                            await self._play(reply, index, pcm, wire)
                        if framer.seconds > limit:
                            raise _Runaway(reply.tts_from, f"{framer.seconds:.0f} s of audio for {len(text)} characters")
                text = ""
            except (StageFailed, _Runaway) as failure:
                failed = failure.served_by if isinstance(failure, StageFailed) else failure.index
                if isinstance(failure, _Runaway):
                    self._runaway(reply, failure)
                if failed is None or failed + 1 >= len(self.tts.providers):
                    raise
                reply.tts_from = failed + 1
                text = unspoken_rest(text, framer.seconds)
            for pcm, wire in framer.finish():
                await self._play(reply, index, pcm, wire)
        clause.complete = True

    def _runaway(self, reply: Reply, failure: _Runaway) -> None:
        """Recorded like a chain's own failures, for the timeline and the log."""
        provider = self.tts.providers[failure.index].name
        reply.timeline.fallbacks.append(f"tts/{provider}: {failure}")
        log.warning("TTS produced far more audio than its text needs", provider=provider, detail=str(failure))

    async def _play(self, reply: Reply, index: int, pcm: bytes, wire: bytes | None) -> None:
        if reply.gate is not None:
            await reply.gate.wait()
        clause = reply.clauses[index]
        clause.queued += len(pcm) // 2
        await self.transport.play(OutFrame(AudioFrame(pcm), PlaybackMark(reply, index, clause.queued, pcm), wire))


def _synthesis(text: str, wire_format: str | None) -> Callable[[TTSProvider[Any]], AsyncIterator[TTSAudio]]:
    if wire_format is None:
        return lambda provider: provider.synthesize(text)
    return lambda provider: provider.synthesize_for(text, wire_format)


def _has_audio(chunk: TTSAudio) -> bool:
    return len(chunk.pcm) > 0


def runaway_seconds(text: str) -> float:
    """More audio than this for ``text`` is a provider gone wrong (looping, or never ending): slow,
    careful speech is about 10 characters a second, and this allows 8 plus 3 s of pauses."""
    return 3.0 + len(text) / 8.0


class _Runaway(Exception):
    def __init__(self, index: int, detail: str) -> None:
        super().__init__(detail)
        self.index = index


SPOKEN_CHARS_PER_SECOND = 15.0
"""A typical TTS speaking rate (about 170 words a minute), to tell how far into a clause a voice
had got when it failed."""


def unspoken_rest(text: str, seconds: float) -> str:
    """The words of ``text`` not yet said after ``seconds`` of its audio, starting one word early:
    repeating a word sounds like a self-correction, skipping one loses meaning."""
    words = text.split()
    budget = seconds * SPOKEN_CHARS_PER_SECOND
    said = 0
    used = 0.0
    for word in words:
        if used + len(word) > budget:
            break
        used += len(word) + 1
        said += 1
    return " ".join(words[max(0, said - 1) :])


MIN_TTS_RATE, MAX_TTS_RATE = 4_000, 384_000


def check_tts_audio(chunk: TTSAudio) -> None:
    """Refuse audio the framer cannot use, so the chain treats it as that provider's failure."""
    if not isinstance(chunk, TTSAudio):
        raise BadItem(f"produced {type(chunk).__name__}, not TTSAudio")
    if not isinstance(chunk.pcm, bytes | bytearray):
        raise BadItem(f"produced audio as {type(chunk.pcm).__name__}, not bytes")
    if chunk.encoding == "mulaw":
        if chunk.sample_rate != MULAW_RATE:
            raise BadItem(f"produced μ-law at {chunk.sample_rate!r} Hz (μ-law is 8000 Hz)")
        return
    if chunk.encoding != "pcm16":
        raise BadItem(f"produced audio encoded as {chunk.encoding!r} (expected pcm16 or mulaw)")
    if len(chunk.pcm) % 2:
        raise BadItem(f"produced {len(chunk.pcm)} bytes of PCM16: not a whole number of samples")
    rate = chunk.sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_TTS_RATE <= rate <= MAX_TTS_RATE:
        raise BadItem(f"produced audio at sample rate {rate!r} (expected {MIN_TTS_RATE}–{MAX_TTS_RATE} Hz)")
