"""The turn manager: one task, one inbox, one state machine that decides who speaks.

It is fed VAD edges, transcripts, playback progress and its own timers, and it owns the agent's
replies: each reply runs in a cancel scope that barge-in cancels at once (LLM, TTS and unplayed
audio together), after which the transport is flushed and only what the caller heard enters the
context.

Turn end ("endpointing") needs both: enough silence after the last voiced sample *and* the final
transcript of the speech. ``max_wait`` caps the wait for a slow recogniser so the agent never stalls.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from contextlib import suppress
from functools import partial
from typing import Any, assert_never

import anyio
import structlog

from voiceflow.clock import Clock
from voiceflow.config.compose import AgentConfig
from voiceflow.config.models import TurnTaking
from voiceflow.config.tools import RESET_STATE
from voiceflow.frame_queue import FrameQueue
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.providers import CallTransport, LLMProvider
from voiceflow.redaction import redact
from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.chain import Chain
from voiceflow.runtime.echo import EchoCanceller
from voiceflow.runtime.recognizer import Recognizer
from voiceflow.runtime.reply import Reply, ReplyPipeline
from voiceflow.runtime.voice_activity import VoiceActivity
from voiceflow.tasks import TaskGroup, create_task_group
from voiceflow.tools.toolbox import Toolbox
from voiceflow.turns.context import Conversation
from voiceflow.turns.diverted import DivertedTurns
from voiceflow.turns.endpointing import Decision, Endpointer
from voiceflow.turns.events import (
    CallerAudioEnded,
    Event,
    HangUpRequested,
    Inbox,
    KeyPressed,
    PauseJudged,
    RecognitionFailed,
    ReplyEnded,
    ReplyHeard,
    SpeechEnded,
    SpeechStarted,
    StageDown,
    State,
    StateRequested,
    Timer,
    TimerFired,
    TranscriptReceived,
    VoiceOnset,
)
from voiceflow.turns.hold import HoldWatch
from voiceflow.turns.ivr import IvrWatch
from voiceflow.turns.keypad import EntryDone, EntryGoesOn, KeypadEntry, SwitchState
from voiceflow.turns.overlap_watch import OverlapWatch
from voiceflow.turns.pause_judge import PauseJudge
from voiceflow.turns.replies import ActiveReply, ReplyLauncher, TextSource, UserTurn, fixed_text, llm_text
from voiceflow.turns.reply_slot import ReplySlot
from voiceflow.turns.timers import Timers
from voiceflow.turns.tool_use import ToolUse
from voiceflow.turns.triage import Route, TurnTriage
from voiceflow.turns.unhappy import Line, UnhappyScript

log = structlog.get_logger("voiceflow.turns")

INBOX_EVENTS = 1024
"""Events waiting for the state machine; a poster waits beyond it."""


class TurnManager:
    def __init__(
        self,
        agent: AgentConfig,
        *,
        clock: Clock,
        llm: Chain[LLMProvider[Any]],
        pipeline: ReplyPipeline,
        stt: Recognizer,
        vad: VoiceActivity,
        transport: CallTransport,
        timeline: CallTimeline,
        hang_up: Callable[[str], None],
        caller_audio_end_is_hangup: bool = True,
        unavailable: str | None = None,
        toolbox: Toolbox | None = None,
        judge: PauseJudge | None = None,
        tail: AudioTail | None = None,
        echo: EchoCanceller | None = None,
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.llm = llm
        self.pipeline = pipeline
        self.stt = stt
        self.vad = vad
        self.transport = transport
        self.timeline = timeline
        self.hang_up = hang_up
        self.caller_audio_end_is_hangup = caller_audio_end_is_hangup
        self.unavailable = unavailable
        self.toolbox = toolbox
        self.judge = judge
        self.tail = tail
        # The policies reach back to the manager through a weak proxy, and the agent's settings
        # directly: a call's objects must not form reference cycles, or they wait for the
        # collector's rare full pass after the call ends (see voiceflow.tasks).
        me = weakref.proxy(self)
        self.hold = HoldWatch(lambda: agent.unhappy_paths.hold)
        """Set when a stage cannot serve this call at all: the agent says so and hangs up."""
        self.conversation = Conversation(agent.prompt.system, agent.context.max_turns)
        self.conversation_state: str | None = None
        self.state = State.LISTENING
        self.endpointer = Endpointer(stt, clock, lambda: me.turn_taking.endpointing, vad)
        self._keypad = KeypadEntry()
        self._spoken_over: tuple[float, float | None] | None = None
        """Caller speech (start, end if over) during a line that could not be interrupted."""
        self.overlaps = OverlapWatch(transport, clock, lambda: me.turn_taking.barge_in, echo)
        self._caller_speaking = False
        self._input_ended = False
        self._end_reason = "goodbye"
        self.script = UnhappyScript(agent.unhappy_paths)
        self.replies = ReplySlot(conversation=self.conversation, script=self.script, overlaps=self.overlaps,
                                 transport=transport, clock=clock)
        self.triage = TurnTriage(self.script, self.hold, tail, IvrWatch(lambda: agent.unhappy_paths.ivr))
        self.diverted = DivertedTurns(
            me, unhappy=lambda: agent.unhappy_paths, triage=self.triage, hold=self.hold,
            overlaps=self.overlaps, conversation=self.conversation, timeline=timeline, transport=transport, clock=clock,
        )
        # Events from the caller's audio, the recogniser, timers and replies; a FrameQueue, not a
        # memory object stream, because a busy call posts one every few frames and the stream's
        # checkpoints on both sides cost two extra trips through the loop per event.
        self._inbox = FrameQueue[Event](INBOX_EVENTS)
        self._tg: TaskGroup | None = None
        self._timers: Timers | None = None
        self._launcher: ReplyLauncher | None = None
        llm.observers.append(self.replies.attempted)
        pipeline.tts.observers.append(self.replies.attempted)

    # --- wiring -----------------------------------------------------------------------------

    @property
    def inbox(self) -> Inbox:
        return self._inbox

    @property
    def user(self) -> UserTurn | None:
        """The caller's turn in progress, if any (kept by the endpointing policy)."""
        return self.endpointer.user

    @property
    def active(self) -> ActiveReply | None:
        """The agent's reply in flight, if any."""
        return self.replies.active

    @property
    def turn_taking(self) -> TurnTaking:
        """Settings in force now: the agent's defaults under the current state's overrides."""
        return self.agent.turn_taking.for_state(self.conversation_state)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._inbox.close()
            if self._timers is not None:
                self._timers.close()  # its clock callback would hold the call until the next deadline
            # What holds the manager's own methods goes with the call (no cycles: see __init__).
            self._tg = self._timers = self._launcher = None
            self.llm.observers.remove(self.replies.attempted)
            self.pipeline.tts.observers.remove(self.replies.attempted)

    async def _run(self) -> None:
        async with create_task_group() as tg:
            self._tg = tg
            self._timers = Timers(self.clock, self._inbox)
            self._launcher = ReplyLauncher(self.pipeline, self.timeline, self._inbox, self._spawn)
            self._timers.set(Timer.MAX_CALL, self.clock.now() + self.agent.unhappy_paths.max_call_seconds)
            greeting = self.agent.prompt.greeting
            if self.unavailable is not None:
                self._give_up(self.unavailable)
            elif greeting is not None:
                self.say(Line("greeting", greeting.text, greeting.interruptible))
            else:
                self.transport.notify("greeting_done")
                self._became_idle()
            await self._loop(self._inbox)
            tg.cancel_scope.cancel()  # the call is over: stop timers and any reply still running

    async def _loop(self, inbox: FrameQueue[Event]) -> None:
        async for event in inbox:
            self._dispatch(event)
            if self.state is State.ENDED:
                return

    def _dispatch(self, event: Event) -> None:
        match event:
            case SpeechStarted():
                self._on_speech_started(event)
            case VoiceOnset():
                self._on_voice_onset(event)
            case SpeechEnded():
                self._on_speech_ended(event)
            case TranscriptReceived():
                self._on_transcript(event)
            case TimerFired():
                self._on_timer(event)
            case ReplyHeard():
                self._on_reply_heard(event)
            case ReplyEnded():
                self._on_reply_ended(event)
            case CallerAudioEnded():
                self._on_caller_audio_ended()
            case RecognitionFailed():
                self._on_recognition_failed(event)
            case StageDown():
                self._give_up(f"{event.stage}: {event.error}")
            case StateRequested():
                self._switch_state(event)
            case PauseJudged():
                self._on_pause_judged(event)
            case KeyPressed():
                self._on_key(event)
            case HangUpRequested():
                self._end(event.reason)
            case _:
                assert_never(event)

    # --- caller speech ----------------------------------------------------------------------

    def _on_speech_started(self, event: SpeechStarted) -> None:
        self._caller_speaking = True
        if self.active is not None and self.state in (State.THINKING, State.SPEAKING):
            self._consider_barge_in(event.t)
            if self.overlaps.overlap is None and self._spoken_over is None:
                # The line cannot be interrupted: what the caller says is kept for after it.
                self._spoken_over = (event.t, None)
                self.stt.speech_started(event.t)
            return
        resumed = self.user is not None and self.state is State.ENDPOINTING
        if resumed:
            self.replies.drop_held()
            self._timers_cancel(Timer.ENDPOINT, Timer.MAX_WAIT)
        self.endpointer.speech_started(event.t, resumed=resumed)
        music_check = None if resumed else self.hold.music_check_at(event.t)
        if music_check is not None:
            self._timers_set(Timer.MUSIC, music_check)
        self._timers_cancel(Timer.SILENCE, Timer.IDLE_END)
        self.state = State.USER_SPEAKING

    def _on_voice_onset(self, event: VoiceOnset) -> None:
        if self.active is not None and self.state is State.SPEAKING:
            check_at = self.overlaps.onset(event.t, self.active.reply)
            if check_at is not None:
                self._timers_set(Timer.BARGE_IN, check_at)

    def _consider_barge_in(self, t: float) -> None:
        assert self.active is not None
        check_at = self.overlaps.start(t, self.active.reply)
        if check_at is not None:
            self._timers_set(Timer.BARGE_IN, check_at)

    def _on_speech_ended(self, event: SpeechEnded) -> None:
        self._caller_speaking = False
        if self._spoken_over is not None and self._spoken_over[1] is None and self.state is not State.USER_SPEAKING:
            self._spoken_over = (self._spoken_over[0], event.t)
            return
        if self.overlaps.overlap is not None:
            self._timers_cancel(Timer.BARGE_IN)
            overlap = self.overlaps.speech_ended(event.t, self.active.reply if self.active else None)
            if overlap is None:
                return  # a backchannel, a cough or the agent's own echo: the agent talks on
            self._barge_in(overlap.started)  # long enough after all: interrupt, then end the segment
        if self.user is None or self.state is not State.USER_SPEAKING:
            return
        judge = self.judge
        pause = self.endpointer.speech_ended(event.t, event.detected_at, judging=judge is not None)
        if pause is None:
            self._became_idle()
            return
        self.state = State.ENDPOINTING
        self._timers_set(Timer.ENDPOINT, pause.endpoint_at)
        self._timers_set(Timer.MAX_WAIT, pause.max_wait_at)
        self._spawn(partial(self.triage.prejudge, self.user, event.t))
        if judge is not None:
            text = self.user.text if self.user is not None else ""

            async def ask() -> None:
                verdict = await judge.judge(event.t, text)
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await self._inbox.send(PauseJudged(pause.serial, verdict))

            self._spawn(ask)

    def _on_pause_judged(self, event: PauseJudged) -> None:
        deadline = self.endpointer.judged(event.serial, event.verdict)
        if deadline is not None and self.state is State.ENDPOINTING:
            self._timers_set(Timer.ENDPOINT, max(self.clock.now(), deadline))

    def _on_recognition_failed(self, event: RecognitionFailed) -> None:
        """A failing recogniser costs the turn in flight, never the call: words of it were lost
        with the stream, so the caller is asked again rather than answered on half a sentence.
        Finals that cannot come are no longer waited for. (The recogniser has already opened a
        new stream for the rest of the call.)"""
        speaking = self.state is State.USER_SPEAKING
        if self.endpointer.recognition_failed(f"stt/{event.provider}: {event.error}", speaking=speaking) \
                and self.state is State.ENDPOINTING:
            self._maybe_end_turn()

    def _on_transcript(self, event: TranscriptReceived) -> None:
        if self.active is not None:
            interrupting = self.overlaps.heard_words(event.transcript.text, self.active.reply)
            if interrupting is not None:
                self._timers_cancel(Timer.BARGE_IN)
                self._barge_in(interrupting.started)
        if not self.endpointer.transcript(event):
            return
        deadline = self.endpointer.rearm()
        if deadline is not None and self.state is State.ENDPOINTING:
            self._timers_set(Timer.ENDPOINT, max(self.clock.now(), deadline))
        self._maybe_end_turn()

    def _maybe_end_turn(self) -> None:
        if self.state is not State.ENDPOINTING:
            return
        match self.endpointer.decision():
            case Decision.END:
                self._end_user_turn()
            case Decision.SPECULATE if self.active is None and self._answerable(self.user):
                assert self.user is not None
                self._speculate(self.user)
            case Decision.SPECULATE | Decision.WAIT:
                pass

    def _answerable(self, user: UserTurn | None) -> bool:
        """Whether the turn would go to the LLM (see :mod:`voiceflow.turns.triage`)."""
        return user is not None and self.triage.judge(user).route is Route.LLM and not self._echo_tail(user)

    def _echo_tail(self, user: UserTurn) -> bool:
        return self.overlaps.echo_tail(user.start, user.marks.get("user_speech_end"), user.text)

    def _speculate(self, user: UserTurn) -> None:
        """Start the reply before the silence confirms the turn; hold its audio until it does."""
        self._timers_cancel(Timer.SILENCE, Timer.IDLE_END)
        assert self._launcher is not None
        launch = partial(self._launcher.launch, "reply", interruptible=True, user_turn=user, gated=True)
        self.replies.hold(user, lambda: launch(self._llm_reply()))

    def _end_user_turn(self) -> None:
        self._timers_cancel(Timer.ENDPOINT, Timer.MAX_WAIT)
        user = self.endpointer.end()
        if self._echo_tail(user):  # the agent's own last words coming back, not the caller
            self.diverted.echo(user)
            return
        triage = self.triage.judge(user)
        if self.diverted.take(user, triage):
            return
        if triage.route is Route.LLM:
            self.hold.released()
        if self.replies.release(user):
            self.state = State.THINKING
            return
        text = user.text
        if self.replies.failed_before(user):
            self.conversation.add_user(text)
            self.say(self.script.apology("the reply to this turn failed"), user_turn=user)
            return
        if triage.line is not None:
            self.say(triage.line, user_turn=user)
            return
        self.conversation.add_user(text)
        self.script.caller_answered()
        self.start_reply("reply", self._llm_reply(), interruptible=True, user_turn=user)

    # --- timers -----------------------------------------------------------------------------

    def _on_timer(self, event: TimerFired) -> None:
        assert self._timers is not None
        if not self._timers.is_current(event):
            return
        self._timers.consumed(event.name)
        match event.name:
            case Timer.ENDPOINT:
                self._timer_endpoint()
            case Timer.MAX_WAIT:
                self._timer_max_wait()
            case Timer.BARGE_IN:
                self._timer_barge_in()
            case Timer.SILENCE:
                self._timer_silence()
            case Timer.IDLE_END:
                self._timer_idle_end()
            case Timer.MAX_CALL:
                self._timer_max_call()
            case Timer.MUSIC:
                self._timer_music()
            case Timer.KEYPAD:
                done = self._keypad.timed_out()
                if done is not None:
                    self._keyed(done)
            case _:
                assert_never(event.name)

    def _on_key(self, event: KeyPressed) -> None:
        settings = self.agent.keypad
        if not settings.enabled:
            return
        active = self.active
        if settings.interrupts and active is not None and active.reply.interruptible and not active.speculative:
            self.replies.interrupt()
            self.state = State.LISTENING
        match self._keypad.press(event.key, event.t, settings):
            case SwitchState(state=state, key=key):
                self._switch_state(StateRequested(state, f"key {key}"))
            case EntryGoesOn(until=until):
                self._timers_set(Timer.KEYPAD, until)
            case EntryDone() as done:
                self._timers_cancel(Timer.KEYPAD)
                self._keyed(done)

    def _keyed(self, done: EntryDone) -> None:
        """A keypad entry is complete: it is the caller's words (joining a turn they are speaking)."""
        text = self.agent.keypad.says.format(keys=done.keys)
        if self.user is not None:
            self.user.add_final(text, None)
            return
        if self.active is not None:
            self.conversation.add_user(text)  # the reply in flight goes on; the next one sees it
            return
        user = UserTurn(start=done.started, segment_start=done.started, finals=[text])
        user.marks["keypad"] = self.clock.now()
        self.conversation.add_user(text)
        self.script.caller_answered()
        self.start_reply("reply", self._llm_reply(), interruptible=True, user_turn=user)

    def _timer_endpoint(self) -> None:
        if self.user is not None:
            later = self.endpointer.silence_reached()
            if later is not None:
                self._timers_set(Timer.ENDPOINT, later)
                return
            self._maybe_end_turn()

    def _timer_music(self) -> None:
        """Music judged while it plays (turns/hold.py): the hold line is said as it starts, not
        when it stops. The music so far becomes an ignored turn; what follows is a new one."""
        user = self.user
        if user is None or self.state is not State.USER_SPEAKING or self.active is not None:
            return
        if self.diverted.music_started(user):
            self.endpointer.drop()

    def _timer_max_wait(self) -> None:
        if self.state is State.ENDPOINTING and self.endpointer.final_overdue():
            self._maybe_end_turn()

    def _timer_barge_in(self) -> None:
        if self.active is None:
            return
        interrupting, again = self.overlaps.check(
            self.clock.now(), self.vad.heard_until, self.vad.voiced_until, self.active.reply
        )
        if again is not None:
            self._timers_set(Timer.BARGE_IN, again)
        if interrupting is not None:
            self._barge_in(interrupting.started)

    def _barge_in(self, t: float) -> None:
        """The caller really is talking over the agent (since audio time ``t``)."""
        interrupted = self.replies.interrupt()
        if interrupted is None:
            return
        carried = interrupted.user_turn if interrupted.reply.first_heard is None else None
        if carried is not None:
            # Still thinking: the caller had not finished. Their new words continue the same turn.
            self.conversation.take_last_user()
        self.endpointer.barged_in(t, carried, answering=interrupted.user_turn, heard_from=interrupted.reply.first_heard)
        self.state = State.USER_SPEAKING

    def _timer_silence(self) -> None:
        if self.state is not State.LISTENING or self.active is not None:
            return
        line = self.script.on_silence()
        if line is not None:
            self.say(line)
        else:
            self._became_idle()

    def _timer_idle_end(self) -> None:
        if self.state is State.LISTENING and self.active is None:
            self._end("end of input")

    def _timer_max_call(self) -> None:
        self.replies.interrupt()
        self.say(self.script.time_is_up())

    # --- replies ----------------------------------------------------------------------------

    def say(self, line: Line, *, user_turn: UserTurn | None = None) -> ActiveReply:
        active = self.start_reply(line.kind, fixed_text(line.text), interruptible=line.interruptible,
                                  user_turn=user_turn)
        if line.failure is not None:
            active.reply.timeline.failure = redact(line.failure)
        return active

    def drop_held_reply(self) -> None:
        self.replies.drop_held()

    def listen(self) -> None:
        self._became_idle()

    def _give_up(self, reason: str) -> None:
        """A stage cannot serve this call: say so, then hang up."""
        if self._end_reason != "goodbye":
            return  # already saying it
        log.error("call cannot go on", reason=reason)
        self._end_reason = f"unavailable: {reason}"
        self.replies.interrupt()
        self.say(self.script.unavailable(reason))

    def start_reply(
        self,
        kind: str,
        source: TextSource,
        *,
        interruptible: bool,
        user_turn: UserTurn | None = None,
        play: Callable[[Reply], Awaitable[None]] | None = None,
    ) -> ActiveReply:
        self._timers_cancel(Timer.SILENCE, Timer.IDLE_END)
        assert self._launcher is not None
        active = self.replies.started(
            self._launcher.launch(kind, source, interruptible=interruptible, user_turn=user_turn, play=play)
        )
        self.state = State.THINKING
        return active

    def _llm_reply(self) -> TextSource:
        tools = None
        if self.toolbox is not None:
            tools = ToolUse(self.toolbox, lambda: self.conversation_state, self.conversation.add_tool_round,
                            lambda state, tool: self._inbox.send_nowait(StateRequested(state, f"tool {tool}")))
        return llm_text(self.llm, self.clock, self.conversation.messages(), tools)

    def _switch_state(self, event: StateRequested) -> None:
        state = None if event.state == RESET_STATE else event.state
        if state == self.conversation_state:
            return
        log.info("conversation state switched", state=event.state, previous=self.conversation_state,
                 because=event.because)
        self.conversation_state = state
        if self.timeline.turns:
            self.timeline.turns[-1].states.append(f"{event.state} ({event.because})")

    def _on_reply_heard(self, event: ReplyHeard) -> None:
        if self.active is not None and self.active.reply is event.reply and self.state is State.THINKING:
            self.state = State.SPEAKING

    def _on_reply_ended(self, event: ReplyEnded) -> None:
        finished = self.replies.ended(event.reply, event.error)
        if finished is None:
            return  # interrupted, dropped or held: already accounted for
        if finished.line is not None:
            self.say(finished.line)
        elif finished.kind == "goodbye":
            self._end(self._end_reason)
        else:
            self._became_idle()

    # --- idle, hang-up ----------------------------------------------------------------------

    def _became_idle(self) -> None:
        self.state = State.LISTENING
        spoken_over, self._spoken_over = self._spoken_over, None
        if spoken_over is not None:
            # The caller spoke over a line that could not be interrupted: their turn began then.
            started, ended = spoken_over
            self._on_speech_started(SpeechStarted(started))
            if ended is not None:
                self._caller_speaking = False
                self._on_speech_ended(SpeechEnded(ended, ended))
            return
        if self._caller_speaking:
            self._on_speech_started(SpeechStarted(self.clock.now()))
            return
        if self._input_ended:
            self._timers_set(Timer.IDLE_END, self.clock.now() + self.agent.session.end_when_idle_after_input)
        else:
            reprompt_after = self.agent.unhappy_paths.silence.reprompt_after
            self._timers_set(Timer.SILENCE, self.hold.silence_deadline(self.clock.now(), reprompt_after))

    def _on_caller_audio_ended(self) -> None:
        self._input_ended = True
        if self.caller_audio_end_is_hangup:
            self._end("caller hung up")
        elif self.state is State.LISTENING and self.active is None:
            self._became_idle()

    def _end(self, reason: str) -> None:
        log.info("call ending", reason=reason)
        self.state = State.ENDED
        self.replies.cancel()
        self.hang_up(reason)

    # --- helpers ----------------------------------------------------------------------------

    def _spawn(self, fn: Callable[[], Any]) -> None:
        assert self._tg is not None
        self._tg.start_soon(fn)

    def _timers_set(self, name: Timer, deadline: float) -> None:
        assert self._timers is not None
        self._timers.set(name, deadline)

    def _timers_cancel(self, *names: Timer) -> None:
        assert self._timers is not None
        for name in names:
            self._timers.cancel(name)
