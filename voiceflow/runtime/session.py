"""One call: the task group that joins transport, VAD, STT, turn manager and replies.

Per-frame work is only what must happen per frame: one VAD call and one hand-off to the STT.
Everything else reacts to edges (speech started/ended, transcripts, playback marks).
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from voiceflow.clock import Clock, using_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.frames import Message, VADKind
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.providers import (
    CallTransport,
    LLMProvider,
    ProviderKind,
    STTProvider,
    STTStream,
    TTSProvider,
    VADProvider,
    VADStream,
)
from voiceflow.runtime.chain import Chain
from voiceflow.runtime.pool import NoProviderReady, ProviderPool
from voiceflow.runtime.reply import Reply, ReplyPipeline
from voiceflow.turns.events import CallerAudioEnded, Event, SpeechEnded, SpeechStarted, TranscriptReceived
from voiceflow.turns.manager import TurnManager

log = structlog.get_logger("voiceflow.session")

_call_numbers = itertools.count(1)


@dataclass
class CallResult:
    call_id: str
    timeline: CallTimeline
    ended_because: str = ""


class Session:
    """Run one call of ``agent`` over ``transport`` on ``clock``, with providers from ``pool``."""

    def __init__(self, agent: AgentConfig, pool: ProviderPool, transport: CallTransport, clock: Clock) -> None:
        self.agent = agent
        self.pool = pool
        self.transport = transport
        self.clock = clock
        self.call_id = transport.call_id or f"call-{next(_call_numbers)}"
        self.ended_because = ""

    async def run(self) -> CallResult:
        with using_clock(self.clock), structlog.contextvars.bound_contextvars(session_id=self.call_id):
            timeline = CallTimeline(self.call_id, origin=self.clock.now())
            vad = await self._vad()
            llm = Chain[LLMProvider[Any]](
                "llm", await self.pool.chain(ProviderKind.LLM, self.agent.llm), self.clock  # type: ignore[arg-type]
            )
            tts = Chain[TTSProvider[Any]](
                "tts", await self.pool.chain(ProviderKind.TTS, self.agent.tts), self.clock  # type: ignore[arg-type]
            )
            stt = await self._open_stt()
            self.transport.on_played(_played)
            manager = TurnManager(
                self.agent,
                clock=self.clock,
                llm=llm,
                pipeline=ReplyPipeline(tts, self.transport, self.clock, self.agent.chunking),
                stt=stt,
                vad=vad,
                transport=self.transport,
                timeline=timeline,
                hang_up=self._hang_up,
                caller_audio_end_is_hangup=self.transport.caller_audio_end_is_hangup,
            )
            log.info("call started", agent=self.agent.name)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self.transport.run, name="transport")
                    tg.start_soon(self._pump_caller_audio, vad, stt, manager.inbox, name="caller-audio")
                    tg.start_soon(self._pump_transcripts, stt, manager.inbox, name="transcripts")
                    tg.start_soon(self._warm_llm, llm.providers[0], name="llm-warm-up")
                    await manager.run()
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await stt.aclose()
                self.transport.notify("hangup", reason=self.ended_because)
            log.info("call ended", reason=self.ended_because, turns=len(timeline.turns))
            return CallResult(self.call_id, timeline, self.ended_because)

    async def _open_stt(self) -> STTStream:
        """The first STT of the chain that opens a stream for this call."""
        errors: list[str] = []
        for provider in await self.pool.chain(ProviderKind.STT, self.agent.stt):
            try:
                return await typing.cast(STTProvider[Any], provider).open_stream()
            except Exception as exc:  # noqa: BLE001 - the next one may work
                errors.append(f"{provider.name}: {type(exc).__name__}: {exc}")
                log.warning("STT could not open a stream, trying the next", provider=provider.name, error=str(exc))
        raise NoProviderReady("no stt provider could open a stream: " + "; ".join(errors))

    async def _vad(self) -> VADStream:
        providers = await self.pool.chain(ProviderKind.VAD, self.agent.vad)
        provider: VADProvider[Any] = providers[0]  # type: ignore[assignment]
        return provider.create_stream()

    async def _pump_caller_audio(
        self, vad: VADStream, stt: STTStream, inbox: anyio.abc.ObjectSendStream[Event]
    ) -> None:
        """The hot path: each caller frame goes through the VAD and on to the STT."""
        async for frame in self.transport.caller_audio():
            edge = vad.process(frame)
            await stt.send(frame)
            if edge is not None:
                if edge.kind is VADKind.SPEECH_START:
                    await inbox.send(SpeechStarted(edge.t))
                else:
                    await inbox.send(SpeechEnded(edge.t, edge.detected_at))
        await inbox.send(CallerAudioEnded())

    async def _pump_transcripts(self, stt: STTStream, inbox: anyio.abc.ObjectSendStream[Event]) -> None:
        try:
            async for transcript in stt.transcripts():
                await inbox.send(TranscriptReceived(transcript))
        except Exception as exc:  # noqa: BLE001 - turns end by max_wait; the call goes on
            log.error("speech recognition stream failed", error=f"{type(exc).__name__}: {exc}")

    async def _warm_llm(self, llm: LLMProvider[Any]) -> None:
        """Let the LLM read the system prompt while the greeting plays (best effort)."""
        try:
            await llm.warm([Message("system", self.agent.prompt.system)])
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation, never a failure
            log.warning("LLM warm-up failed", error=f"{type(exc).__name__}: {exc}")

    def _hang_up(self, reason: str) -> None:
        self.ended_because = reason


def _played(mark: object, t: float) -> None:
    """Playback progress from the transport → the reply that produced the frame."""
    reply, clause_index, through = typing.cast(tuple[Reply, int, int], mark)
    reply.played(clause_index, through, t)
