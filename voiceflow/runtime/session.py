"""One call: the task group that joins transport, VAD, STT, turn manager and replies.

Per-frame work is only what must happen per frame: one VAD call and one hand-off to the STT's
queue. Everything else reacts to edges (speech started/ended, transcripts, playback marks).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from voiceflow.clock import Clock, using_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.frames import Message, VADEvent, VADKind
from voiceflow.metrics.budget import record_misses
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.providers import CallTransport, LLMProvider, ProviderKind, TTSProvider
from voiceflow.redaction import Redactor, redact, using_redactor
from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.chain import AttemptRecord, Chain, StageFailed
from voiceflow.runtime.deadline import within
from voiceflow.runtime.echo import EchoCanceller
from voiceflow.runtime.pool import NoProviderReady, ProviderPool
from voiceflow.runtime.recognizer import Recognizer, RecognizerFailed, RecognizerUnavailable
from voiceflow.runtime.reply import PlaybackMark, ReplyPipeline
from voiceflow.runtime.voice_activity import VoiceActivity
from voiceflow.tasks import create_task_group
from voiceflow.tools.toolbox import Toolbox, bind_tools
from voiceflow.turns.events import (
    CallerAudioEnded,
    Event,
    HangUpRequested,
    Inbox,
    KeyPressed,
    RecognitionFailed,
    SpeechEnded,
    SpeechStarted,
    StageDown,
    TranscriptReceived,
    VoiceOnset,
)
from voiceflow.turns.manager import TurnManager
from voiceflow.turns.pause_judge import PauseJudge

MUSIC_SECONDS = 8.0
"""Caller audio kept for the music detector (``unhappy_paths.hold.detect_music``)."""

log = structlog.get_logger("voiceflow.session")

_call_numbers = itertools.count(1)


@dataclass
class CallResult:
    call_id: str
    timeline: CallTimeline
    ended_because: str = ""


class Session:
    """Run one call of ``agent`` over ``transport`` on ``clock``, with providers from ``pool``.

    A session never raises for a provider's sake: a stage that cannot start is said to the caller
    (``unhappy_paths.unavailable``) and the call ends; a stage that fails mid-call costs a turn.
    Its :attr:`timeline` exists from the start, so whoever stops a call early (Ctrl-C, a drain)
    still gets what happened so far from :meth:`result`.
    """

    def __init__(self, agent: AgentConfig, pool: ProviderPool, transport: CallTransport, clock: Clock) -> None:
        self.agent = agent
        self.pool = pool
        self.transport = transport
        self.clock = clock
        self.call_id = transport.call_id or f"call-{next(_call_numbers)}"
        self.ended_because = ""
        self.timeline = CallTimeline(self.call_id, origin=clock.now())
        self._manager: TurnManager | None = None
        self._vad: VoiceActivity | None = None
        self._hang_up_reason: str | None = None

    def result(self, ended_because: str | None = None) -> CallResult:
        """What happened so far (the whole call once :meth:`run` has returned), with each turn's
        latency budget misses recorded and logged."""
        record_misses(self.timeline, self.agent.latency_budget)
        return CallResult(self.call_id, self.timeline, ended_because or self.ended_because)

    def request_hang_up(self, reason: str) -> None:
        """End the call from outside (a signal, a drain): the manager hangs up at its next step."""
        self._hang_up_reason = reason
        if self._manager is not None:
            try:
                self._manager.inbox.send_nowait(HangUpRequested(reason))
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

    @property
    def caller_audio_lag(self) -> float:
        """Seconds the newest caller frame waited between arriving (the transport stamps it) and
        reaching the voice activity detector: how far behind real time this call's audio is taken.
        0 before the first frame (and for transports that stamp audio time, not arrival)."""
        vad = self._vad
        if vad is None or vad.heard_until == float("-inf"):
            return 0.0
        return max(0.0, vad.heard_at - vad.heard_until)

    async def run(self) -> CallResult:
        with (
            using_clock(self.clock),
            using_redactor(Redactor.for_config(self.agent)),
            structlog.contextvars.bound_contextvars(session_id=self.call_id),
        ):
            unavailable: list[str] = []
            tts_providers = await self._providers(ProviderKind.TTS, self.agent.tts, unavailable)
            if not tts_providers:
                # Nothing can be said: end at once, and say why in the result and the log.
                self.ended_because = f"unavailable: {unavailable[0]}"
                log.error("call cannot start", reason=unavailable[0])
                return self.result()
            vad_providers = await self._providers(ProviderKind.VAD, self.agent.vad, unavailable)
            vad = self._vad = VoiceActivity(vad_providers, self.clock)
            if vad_providers and not vad.available:
                unavailable.append("vad: no voice activity detector could start")
            llm = Chain[LLMProvider[Any]](
                "llm", await self._providers(ProviderKind.LLM, self.agent.llm, unavailable), self.clock,
                breaker=self.pool.breaker,
            )
            tts = Chain[TTSProvider[Any]]("tts", tts_providers, self.clock, breaker=self.pool.breaker)
            stt = Recognizer(await self._providers(ProviderKind.STT, self.agent.stt, unavailable),
                             breaker=self.pool.breaker)
            stt.observers.append(self._stt_attempt)
            toolbox = self._toolbox(llm)
            judge = await self._pause_judge()
            tail = judge.tail if judge is not None else (
                AudioTail(MUSIC_SECONDS) if self.agent.unhappy_paths.hold.detect_music else None)
            try:
                await self._converse(stt, vad, llm, tts, unavailable, toolbox, judge, tail)
            finally:
                if tail is not None:
                    tail.clear()
                self._manager = None  # (it refers back to this session: a cycle)
                await stt.aclose()  # also when cancelled while the stream was still opening
                if toolbox is not None:
                    await toolbox.aclose()
                self.transport.notify("hangup", reason=self.ended_because)
            log.info("call ended", reason=self.ended_because, turns=len(self.timeline.turns))
            return self.result()

    async def _converse(
        self,
        stt: Recognizer,
        vad: VoiceActivity,
        llm: Chain[LLMProvider[Any]],
        tts: Chain[TTSProvider[Any]],
        unavailable: list[str],
        toolbox: Toolbox | None,
        judge: PauseJudge | None,
        tail: AudioTail | None,
    ) -> None:
        """Open the recogniser's stream, then run the turn manager and the call's pumps."""
        if stt.providers:
            try:
                await stt.open()
            except RecognizerUnavailable as exc:
                unavailable.append(str(exc))
        echo_settings = self.agent.turn_taking.barge_in.echo
        echo = EchoCanceller(echo_settings) if echo_settings.cancel else None
        self.transport.on_played(_played if echo is None else _played_to(echo))
        manager = self._manager = TurnManager(
            self.agent,
            clock=self.clock,
            llm=llm,
            pipeline=ReplyPipeline(tts, self.transport, self.clock, self.agent.chunking),
            stt=stt,
            vad=vad,
            transport=self.transport,
            timeline=self.timeline,
            hang_up=self._hang_up,
            caller_audio_end_is_hangup=self.transport.caller_audio_end_is_hangup,
            unavailable="; ".join(unavailable) or None,
            toolbox=toolbox,
            judge=judge,
            tail=tail,
            echo=echo,
        )
        if self._hang_up_reason is not None:
            self.request_hang_up(self._hang_up_reason)

        def key_pressed(key: str, t: float) -> None:
            with suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                manager.inbox.send_nowait(KeyPressed(key, t))

        self.transport.on_dtmf(key_pressed)
        log.info("call started", agent=self.agent.name)
        try:
            async with create_task_group() as tg:
                tg.start_soon(self.transport.run, name="transport")
                if unavailable:
                    tg.start_soon(self._discard_caller_audio, name="caller-audio")
                else:
                    tg.start_soon(self._pump_caller_audio, vad, stt, manager.inbox, tail, echo, name="caller-audio")
                    tg.start_soon(stt.run, name="stt")
                    tg.start_soon(self._pump_recognizer, stt, manager.inbox, name="transcripts")
                    tg.start_soon(self._warm_llm, llm.providers[0], name="llm-warm-up")
                await manager.run()
                tg.cancel_scope.cancel()
        finally:  # also when the call is cut: its history goes with it
            if echo is not None:
                if echo.delay is not None:
                    self.timeline.notes.append(echo.describe())
                echo.clear()

    async def _pause_judge(self) -> PauseJudge | None:
        """The end-of-turn models, if the agent has any that could start (else the silence rule
        ends turns, and the log says why)."""
        if not self.agent.turn_detection:
            return None
        problems: list[str] = []
        detectors = await self._providers(ProviderKind.TURN, self.agent.turn_detection, problems)
        if not detectors:
            log.warning("no end-of-turn model could start: the silence rule ends turns", problems=problems)
            return None
        seconds = max(MUSIC_SECONDS, *(detector.max_audio_seconds for detector in detectors))
        return PauseJudge(detectors, AudioTail(seconds))

    def _toolbox(self, llm: Chain[LLMProvider[Any]]) -> Toolbox | None:
        if not self.agent.tools:
            return None
        blind = [provider.name for provider in llm.providers if not provider.calls_tools()]
        if blind:
            log.warning("these LLMs cannot call tools: serving a reply, they answer without them",
                        providers=blind)
        tools = bind_tools(self.agent.tools, self.pool.registry)
        return Toolbox(tools, self.clock, self.call_id, self.agent.turn_taking.states)

    async def _providers(self, kind: ProviderKind, configs: Any, unavailable: list[str]) -> list[Any]:
        """The stage's prepared providers; an empty list (and the reason noted) if none is ready."""
        try:
            return await self.pool.chain(kind, configs)
        except NoProviderReady as exc:
            unavailable.append(str(exc))
            return []

    async def _pump_caller_audio(
        self,
        vad: VoiceActivity,
        stt: Recognizer,
        inbox: Inbox,
        tail: AudioTail | None,
        echo: EchoCanceller | None = None,
    ) -> None:
        """The hot path: each caller frame goes through the VAD and on to the STT's queue.

        The end of the caller's audio is an endpoint: speech still open then is ended there, so a
        recording cut mid-word, or a line that drops while the caller talks, still gets its turn.
        """
        end: float | None = None
        try:
            try:
                async for frame in self.transport.caller_audio():
                    if echo is not None:
                        frame = echo.clean(frame)  # the agent's own voice out before anyone hears
                    try:
                        edge = await vad.aprocess(frame)
                    except StageFailed as failure:
                        await inbox.send(StageDown("vad", str(failure)))
                        return
                    stt.send(frame)
                    if tail is not None:
                        tail.push(frame)
                    end = frame.t + frame.duration
                    if edge is not None:
                        await inbox.send(_edge_event(edge))
                    elif vad.onset is not None:
                        await inbox.send(VoiceOnset(vad.onset))
            except Exception as exc:  # noqa: BLE001 - a broken transport is a hung-up caller
                log.error("caller audio failed: treating it as a hang-up", error=redact(f"{type(exc).__name__}: {exc}"))
            edge = vad.finish(end) if end is not None else None
            if edge is not None:
                await inbox.send(_edge_event(edge))
            await inbox.send(CallerAudioEnded())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the turn manager has finished: the call is ending

    async def _discard_caller_audio(self) -> None:
        """The call is only being told it cannot be served: keep the line drained meanwhile."""
        try:
            async for _ in self.transport.caller_audio():
                pass
        except Exception as exc:  # noqa: BLE001 - the call is ending anyway
            log.warning("caller audio failed", error=redact(f"{type(exc).__name__}: {exc}"))

    async def _pump_recognizer(self, stt: Recognizer, inbox: Inbox) -> None:
        try:
            async for output in stt.outputs:
                if isinstance(output, RecognizerFailed):
                    await inbox.send(RecognitionFailed(output.provider, output.error))
                else:
                    await inbox.send(TranscriptReceived(output.transcript, output.answers))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _warm_llm(self, llm: LLMProvider[Any]) -> None:
        """Let the LLM read the system prompt while the greeting plays (best effort)."""
        try:
            await within(llm.config.timeouts.prepare, "warm",
                         lambda: llm.warm([Message("system", self.agent.prompt.system)]))
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation, never a failure
            log.warning("LLM warm-up failed", error=redact(f"{type(exc).__name__}: {exc}"))

    def _stt_attempt(self, record: AttemptRecord) -> None:
        if record.error is not None:
            self.timeline.notes.append(f"{record.stage}/{record.provider}: {record.error}")

    def _hang_up(self, reason: str) -> None:
        self.ended_because = reason


def _edge_event(edge: VADEvent) -> Event:
    if edge.kind is VADKind.SPEECH_START:
        return SpeechStarted(edge.t)
    return SpeechEnded(edge.t, edge.detected_at)


def _played_to(echo: EchoCanceller) -> Callable[[object, float], None]:
    """Playback progress, and the audio played as the echo canceller's reference."""

    def played(mark: object, t: float) -> None:
        _played(mark, t)
        if isinstance(mark, PlaybackMark):
            echo.played(mark.pcm, t)

    return played


def _played(mark: object, t: float) -> None:
    """Playback progress from the transport → the reply that produced the frame."""
    match mark:
        case PlaybackMark():
            mark.heard(t)
        case _:
            log.warning("transport reported a mark it was never given", mark=type(mark).__name__)
