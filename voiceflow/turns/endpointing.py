"""When the caller's turn is over: the endpointing policy.

The turn manager owns the conversation (who speaks, replies, speculation, timers); this module
owns the caller's turn in progress (:class:`~voiceflow.turns.replies.UserTurn`) and the judgement
of when it is over. A turn ends when two things hold:

* **the transcript is in**: every ``finalize()`` the turn asked for is answered (or given up on
  at ``max_wait``: a slow recogniser never stalls the call);
* **the pause is long enough**: ``min_silence`` after the last voiced sample (raised for a
  caller whose own pauses are longer, :mod:`~voiceflow.turns.pause_stats`), unless the
  end-of-turn model (``turn_detection``) judged the pause: a finished turn then ends after
  ``turn_model.finished_silence``, an unfinished one waits ``turn_model.unfinished_silence``.
  While its verdict is awaited the turn does not end, for at most ``turn_model.verdict_wait``
  past the silence rule's deadline: a slow model costs that much, never more. The words so far
  move it too (:mod:`~voiceflow.turns.transcript_rules`): longer after a trailing "and" or in
  the middle of a number, shorter after a question. Whatever asks for more time wins.

The pause is counted in the caller's audio as it arrives, not on the clock: frames that are late
in the network are waited for (up to ``max_delivery_gap``), never taken for silence
(:mod:`~voiceflow.turns.late_audio`).

Finals are tied to the finalize request they answer, so a late final of a turn already over is
dropped instead of landing in the next one (:attr:`Endpointer.abandoned`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import structlog

from voiceflow.clock import Clock
from voiceflow.config.endpointing import Endpointing, TranscriptRules
from voiceflow.runtime.recognizer import Recognizer
from voiceflow.turns.events import TranscriptReceived
from voiceflow.turns.late_audio import Heard, Hearing, NotYet, silence_heard
from voiceflow.turns.pause_stats import ADAPTIVE_NOTE, REACTION, PauseLearner, Wait
from voiceflow.turns.replies import UserTurn
from voiceflow.turns.transcript_rules import Hint, TranscriptJudge

TEXT_LOOKED_AT = 300
"""Characters at the end of the transcript the rules look at (the agent file's own regexes
included: a long monologue must not make them slow)."""

LATE_NOTED = 0.05
"""Seconds of waiting for late audio worth a note in the turn's timeline (less is a frame's
rounding, on every turn of a line that stamps its frames a little in the past)."""

log = structlog.get_logger("voiceflow.endpointing")


class Decision(Enum):
    WAIT = "wait"
    """Not over yet (or not known to be)."""
    END = "end"
    """The turn is over."""
    SPECULATE = "speculate"
    """The transcript is in but the pause is not yet long enough: a reply may start, held back."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Deadlines the manager's timers keep after the caller paused."""

    serial: int
    """Names this pause to a verdict that comes back later."""
    endpoint_at: float
    """When the pause will be long enough, as far as is known now."""
    max_wait_at: float
    """When to stop waiting for the final transcript."""


@dataclass(slots=True)
class _PauseState:
    serial: int
    t: float
    """Audio time the pause began (just after the last voiced sample)."""
    judging: bool
    """An end-of-turn verdict was asked for and has not come back."""
    wait: Wait
    """The silence rule's wait for this pause (``min_silence``, or more for a caller who pauses)."""
    verdict: float | None = None
    hints: list[Hint] = field(default_factory=list)
    late_since: float | None = None
    """Clock time the deadline was first reached with the pause's audio still on its way."""

    def silence(self, settings: Endpointing) -> float:
        """How long the pause must last, as far as is known now: whatever asks for more time
        wins; without that, the shortest of the wait and what the model and words allow."""
        model = settings.turn_model
        base = self.wait.silence
        proposals = [hint.silence for hint in self.hints]
        if self.verdict is not None:
            proposals.append(model.finished_silence if self.verdict >= model.threshold else model.unfinished_silence)
        longer = [s for s in proposals if s > base]
        silence = max(longer) if longer else min([base, *proposals])
        if self.judging:
            silence = max(silence, base) + model.verdict_wait
        return silence

    def held_longer(self, settings: Endpointing) -> bool:
        """Whether a transcript rule or the model's verdict asked for more than the wait."""
        return self.silence(settings) > self.wait.silence + 1e-9 and not self.judging

    def adapted(self, settings: Endpointing) -> bool:
        """Whether the caller's learned pauses set this pause's length (nothing else did)."""
        return self.wait.raised and not self.judging and abs(self.silence(settings) - self.wait.silence) < 1e-9


class Endpointer:
    """The caller's turn in progress and the endpointing judgement for one call."""

    def __init__(
        self, stt: Recognizer, clock: Clock, settings: Callable[[], Endpointing], hearing: Hearing
    ) -> None:
        self.stt = stt
        self.clock = clock
        self._settings = settings
        self._hearing = hearing
        self.pauses = PauseLearner()
        self._answered: UserTurn | None = None
        """The last turn judged over, until the caller's next speech says whether it really was
        over (see :mod:`~voiceflow.turns.pause_stats`)."""
        self._words = TranscriptJudge(TranscriptRules())
        self.user: UserTurn | None = None
        self._pause: _PauseState | None = None
        self._serial = 0
        self.abandoned = 0
        """The last finalize request given up on (max_wait, a failure): its answer is dropped."""

    # --- the caller's speech -----------------------------------------------------------------

    def speech_started(self, t: float, *, resumed: bool) -> UserTurn:
        """Speech began at audio time ``t``: a new turn, or (``resumed``) the paused one going on."""
        settings = self._settings()
        if resumed and self._pause is not None and not self._pause.held_longer(settings):
            # A pause the words or the model had already held open was not at risk: it says how
            # long the caller pauses mid-thought, which those rules cover, not what the silence
            # rule alone must outlast.
            self.pauses.went_on(t - self._pause.t, settings.min_silence)
        elif not resumed:
            self._confirm_answered()
        self._pause = None
        if resumed and self.user is not None:
            self.user.segment_start = t
            self.user.silence_ok = False
        else:
            self.user = UserTurn(start=t, segment_start=t)
            self.user.marks["user_speech_start"] = t
        self.stt.speech_started(t)
        return self.user

    def barged_in(
        self,
        t: float,
        carried: UserTurn | None,
        *,
        answering: UserTurn | None = None,
        heard_from: float | None = None,
    ) -> UserTurn:
        """The caller interrupted the agent at ``t``; ``carried`` is their previous turn when the
        agent had not yet said anything of its reply (their new words continue it). The reply
        interrupted was ``answering`` that turn (if any), and its voice first reached the
        caller at ``heard_from`` (``None``: it never did)."""
        self._pause = None
        answered, self._answered = self._answered, None
        self.user = UserTurn(start=t, segment_start=t)
        self.user.marks["user_speech_start"] = t
        voice_end = answered.marks.get("user_speech_end") if answered is not None else None
        if answering is answered and voice_end is not None and (heard_from is None or t <= heard_from + REACTION):
            # Too soon to be answering the agent: the caller was going on with their own turn.
            if self.pauses.went_on(t - voice_end, self._settings().min_silence):
                self.user.endpoint_notes.append(
                    f"cut off: the caller went on after a {t - voice_end:.2f} s pause (learned)")
        elif answered is not None:
            self.pauses.turn_confirmed()
        if carried is not None:
            self.user.continues(carried)
        self.stt.speech_started(t)
        return self.user

    def speech_ended(self, t: float, detected_at: float, *, judging: bool = False) -> Pause | None:
        """The caller paused at audio time ``t``: the final transcript is asked for, and the
        deadlines returned (``judging``: an end-of-turn verdict is being asked for too).
        ``None``: too little speech to be a turn (a cough); it is dropped."""
        user = self.user
        assert user is not None
        user.voiced += max(0.0, t - user.segment_start)
        settings = self._settings()
        if user.voiced < settings.min_speech and not user.requested:
            self.user = None
            return None
        user.marks["user_speech_end"] = t
        user.marks["vad_end_detected"] = detected_at
        now = self.clock.now()
        user.marks["stt_finalize"] = now  # the last segment is the one waited for
        user.requested = True
        user.awaiting = self.stt.finalize()
        self._serial += 1
        wait = self.pauses.wait(settings.adaptive, settings.min_silence)
        self._pause = _PauseState(self._serial, t, judging, wait, hints=self._hints(user))
        return Pause(self._serial, max(now, self.endpoint_at()), now + settings.max_wait)

    def endpoint_at(self) -> float:
        """When the current pause is long enough to end the turn, as far as is known now."""
        pause = self._pause
        assert pause is not None
        return pause.t + pause.silence(self._settings())

    def rearm(self) -> float | None:
        """Judge the pause again after something changed (a verdict, a final): the deadline now,
        or ``None`` if no pause is in progress."""
        if self._pause is None or self.user is None:
            return None
        deadline = self.endpoint_at()
        now = self.clock.now()
        heard = self._heard(deadline, now) if now >= deadline else None
        if isinstance(heard, Heard):
            self._long_enough(heard, now)
        else:
            self.user.silence_ok = False
        return deadline

    def _hints(self, user: UserTurn) -> list[Hint]:
        rules = self._settings().transcript_rules
        if self._words.settings is not rules:
            self._words = TranscriptJudge(rules)
        hints = self._words.hints(user.text[-TEXT_LOOKED_AT:])
        for hint in hints:
            _note(user, f"transcript: {hint.reason} ({hint.silence:g} s)")
        return hints

    def judged(self, serial: int, verdict: tuple[float, str] | None) -> float | None:
        """The end-of-turn verdict on pause ``serial`` (``None``: no model answered). Returns the
        new endpoint deadline, or ``None`` if that pause is no longer the current one."""
        pause, user = self._pause, self.user
        if pause is None or user is None or pause.serial != serial:
            return None
        pause.judging = False
        user.marks["turn_judged"] = self.clock.now()
        if verdict is None:
            user.endpoint_notes.append("end-of-turn model: no verdict (silence rule)")
        else:
            pause.verdict, judge = verdict
            finished = pause.verdict >= self._settings().turn_model.threshold
            user.endpoint_notes.append(f"{judge}: {'finished' if finished else 'unfinished'} ({pause.verdict:.2f})")
        return self.rearm()

    # --- the recogniser ----------------------------------------------------------------------

    def transcript(self, event: TranscriptReceived) -> bool:
        """Take a transcript; True if it added a final to the turn (the decision may change)."""
        transcript, user = event.transcript, self.user
        if event.answers is not None and event.answers <= self.abandoned:
            log.info("late final of an earlier turn dropped", text=transcript.text)
            return False
        if user is None:
            return False
        if not transcript.is_final:
            user.interim = transcript.text
            return False
        if event.answers is None and transcript.end is not None and transcript.end <= user.start:
            log.info("late phrase final of an earlier utterance dropped", text=transcript.text)
            return False
        user.add_final(transcript.text.strip(), transcript.confidence)
        user.marks["stt_final"] = self.clock.now()
        if self._pause is not None:
            self._pause.hints = self._hints(user)
        if event.answers is not None and user.awaiting is not None and event.answers >= user.awaiting:
            user.awaiting = None  # the final for the turn's last segment: all of it is in
        return True

    def recognition_failed(self, cause: str, *, speaking: bool) -> bool:
        """The recogniser failed (``cause``); True if the turn stopped waiting for its finals.

        Words were lost with the stream, so the turn's transcript cannot be trusted: the first
        cause is kept (the caller is asked again rather than answered on half a sentence).
        """
        user = self.user
        if user is None:
            return False
        missing = user.awaiting is not None
        if (speaking or missing) and user.failure is None:
            user.failure = cause
        if missing and not speaking:
            self._give_up_finals(user)
            return True
        return False

    def final_overdue(self) -> bool:
        """``max_wait`` passed; True if the turn was still waiting (it goes on without)."""
        user = self.user
        if user is None or user.awaiting is None:
            return False
        log.warning("final transcript late: going on with what is known")
        if not user.text:
            # Nothing at all came back: that is the recogniser failing, not unclear speech.
            max_wait = self._settings().max_wait
            user.failure = f"stt/{self.stt.provider_name}: no final transcript within max_wait {max_wait:g} s"
        self._give_up_finals(user)  # the silence rule still applies
        return True

    def _give_up_finals(self, user: UserTurn) -> None:
        """Go on without the finals still awaited; if one comes later it belongs to this turn,
        which will be over, and is dropped rather than taken for the next one."""
        if user.awaiting is not None:
            self.abandoned = max(self.abandoned, user.awaiting)
            user.awaiting = None

    # --- the judgement -----------------------------------------------------------------------

    def silence_reached(self) -> float | None:
        """The endpoint timer fired: ``None`` if the pause is long enough now, else when to look
        again: the deadline moved meanwhile (a verdict asked for is not back yet, or said
        "unfinished"), or the pause's audio has not all arrived yet."""
        user, pause = self.user, self._pause
        if user is None or pause is None:
            return None
        deadline = self.endpoint_at()
        now = self.clock.now()
        if now < deadline:
            return deadline
        match self._heard(deadline, now):
            case NotYet(check_at=check_at):
                if pause.late_since is None:
                    pause.late_since = now
                return check_at
            case Heard() as heard:
                self._long_enough(heard, now)
        return None

    def _long_enough(self, heard: Heard, now: float) -> None:
        """The pause is long enough, in the audio received: say in the timeline what made it
        longer than usual (late audio, this caller's learned pauses)."""
        user, pause = self.user, self._pause
        assert user is not None and pause is not None
        settings = self._settings()
        late = now - pause.late_since if pause.late_since is not None else 0.0
        if heard.gap is not None:
            _note(user, f"late audio: no caller audio for {heard.gap:.2f} s, taken as silence "
                        f"(max_delivery_gap {settings.max_delivery_gap:g} s)")
        elif late >= LATE_NOTED:
            _note(user, f"late audio: waited {late:.2f} s for the pause's audio to arrive")
        if pause.adapted(settings):
            # Only when it decided: the operator reading the timeline sees why this turn waited.
            user.endpoint_notes[:] = [n for n in user.endpoint_notes if not n.startswith(ADAPTIVE_NOTE)]
            _note(user, pause.wait.describe(settings.adaptive))
        user.silence_ok = True

    def _heard(self, deadline: float, now: float) -> Heard | NotYet:
        return silence_heard(deadline, self._hearing, now, self._settings().max_delivery_gap)

    def decision(self) -> Decision:
        user = self.user
        if user is None or user.awaiting is not None:
            return Decision.WAIT
        if user.silence_ok:
            return Decision.END
        if self._settings().preemptive and user.text and user.failure is None:
            return Decision.SPECULATE
        return Decision.WAIT

    def end(self) -> UserTurn:
        """The turn is over: hand it to the manager."""
        user = self.user
        assert user is not None
        user.marks["endpoint"] = self.clock.now()
        self._answered = user
        self.user = None
        self._pause = None
        return user

    def _confirm_answered(self) -> None:
        """The caller's new turn began as a turn of its own: the last one really was over."""
        if self._answered is not None:
            self._answered = None
            self.pauses.turn_confirmed()

    def drop(self) -> None:
        """Forget the turn in progress (it became part of something else)."""
        self.user = None
        self._pause = None


def _note(user: UserTurn, note: str) -> None:
    """Say in the turn's timeline how its end was judged (once per reason)."""
    if note not in user.endpoint_notes:
        user.endpoint_notes.append(note)
