"""Caller speech over a reply in flight, from its onset to the verdict.

:mod:`voiceflow.turns.barge_in` judges; this keeps the overlap in progress and does what the
judgement implies for the reply: hold its audio at the onset (``pause_on_speech``; with
``pause_at_onset``, already at the first voiced frame, before the detector has called it speech),
let it play on after a false alarm, and say so in the reply's timeline. The turn manager hears only the
outcome that matters to it: an interruption (:meth:`OverlapWatch.interrupts` and friends return
the overlap that interrupts).

It also remembers the last reply heard to its end, so that the agent's echo arriving after it
stopped is not answered as the caller (:meth:`OverlapWatch.echo_tail`).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from voiceflow.clock import Clock
from voiceflow.config.models import BargeIn
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.providers import CallTransport
from voiceflow.runtime.echo import EchoCanceller
from voiceflow.runtime.reply import Reply
from voiceflow.turns.barge_in import AgentStopped, BargeInPolicy, Overlap, Verdict, words_of

log = structlog.get_logger("voiceflow.barge_in")


class OverlapWatch:
    def __init__(
        self,
        transport: CallTransport,
        clock: Clock,
        settings: Callable[[], BargeIn],
        echo: EchoCanceller | None = None,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self._settings = settings
        self._policy: BargeInPolicy | None = None
        self.overlap: Overlap | None = None
        self.echo = echo
        self._stopped: AgentStopped | None = None
        self._held_at: float | None = None
        """Audio time of a voice onset that paused the reply, while no overlap has taken it over."""

    @property
    def policy(self) -> BargeInPolicy:
        settings = self._settings()
        if self._policy is None or self._policy.settings is not settings:
            self._policy = BargeInPolicy(settings)
        return self._policy

    def onset(self, t: float, reply: Reply) -> float | None:
        """The caller's voice began at audio time ``t`` over ``reply``, not yet called speech:
        hold the reply's audio if the settings say so, and return when to look again (``None``:
        nothing held). The speech start that follows takes the hold over (:meth:`start`)."""
        if self.overlap is not None or self._held_at is not None or not self._line_quiet():
            return None
        now = self.clock.now()
        if not self.policy.holds_at_onset(now, interruptible=reply.interruptible, first_heard=reply.first_heard):
            return None
        if not self.transport.pause():
            return None
        self._held_at = t
        return now + RECHECK

    def _line_quiet(self) -> bool:
        """Whether the canceller has found that this line brings nothing of the agent back.
        Until then, without one, or on a line that does echo (what the canceller leaves of it
        can still be voiced here and there), the agent's own voice would sound like an onset at
        its every word and hold the reply over and over: only the detector's speech start (its
        start window rides out stray syllables) pauses it there."""
        return self.echo is not None and self.echo.echoes is False

    def start(self, t: float, reply: Reply) -> float | None:
        """Speech began at audio time ``t`` over ``reply``: when to check it (``None``: it cannot
        interrupt this reply, so it is not watched)."""
        held, self._held_at = self._held_at is not None, None
        overlap = self.overlap = self.policy.on_speech_start(
            t, self.clock.now(), interruptible=reply.interruptible, first_heard=reply.first_heard
        )
        if overlap is None:
            if held:
                self.transport.resume()
            return None
        if overlap.speaking and self.policy.settings.pause_on_speech:
            overlap.paused = held or self.transport.pause()
        elif held:
            self.transport.resume()
        return overlap.check_at

    def heard_words(self, text: str, reply: Reply) -> Overlap | None:
        """The recogniser heard ``text`` of the overlap: the overlap if its words interrupt."""
        overlap = self.overlap
        if overlap is None:
            return None
        overlap.words = text
        match self.policy.classify(overlap, reply.spoken_so_far()):
            case Verdict.INTERRUPT:
                return self.take()
            case Verdict.IGNORE:
                self._play_on(overlap, reply)
            case None | Verdict.WAIT | Verdict.STOPPED:
                pass
        return None

    def check(
        self, now: float, heard_until: float, voiced_until: float, reply: Reply
    ) -> tuple[Overlap | None, float | None]:
        """The check timer fired: (the overlap if it interrupts, when to check again if at all)."""
        overlap = self.overlap
        if overlap is None:
            return None, self._check_hold(now, heard_until, voiced_until, reply)
        match self.policy.judge(overlap, heard_until, voiced_until, reply.spoken_so_far()):
            case Verdict.WAIT:
                return None, now + RECHECK
            case Verdict.INTERRUPT:
                return self.take(), None
            case Verdict.IGNORE:
                self._play_on(overlap, reply)
            case Verdict.STOPPED:
                pass  # the voice ended short of the thresholds; the end of speech settles it
        return None, None

    def speech_ended(self, t: float, reply: Reply | None) -> Overlap | None:
        """The overlapping speech ended at ``t``: the overlap if it interrupts after all (else the
        reply plays on)."""
        overlap = self.take()
        if overlap is None:
            return None
        if reply is not None and not self.policy.long_enough(overlap, t, reply.spoken_so_far()):
            self._play_on(overlap, reply)
            return None
        return overlap

    def agent_finished(self, reply: Reply) -> None:
        """``reply`` was heard to its end just now: its echo may follow it for a moment."""
        words = words_of(reply.heard_text())
        self._stopped = AgentStopped(self.clock.now(), words[-self.policy.settings.echo.tail_words :])

    def echo_tail(self, start: float, voiced_end: float | None, text: str) -> bool:
        """Whether a caller turn is the echo of the reply that just ended, not the caller.

        Where the canceller found the path, that window is the measured delay; where it found
        that the line brings nothing back, there is no tail to fear, and a caller who answers
        at once in the agent's own words ("tea or coffee?" -- "coffee") is answered."""
        stopped = self._stopped
        if stopped is None:
            return False
        echo = self.echo
        if echo is not None and echo.echoes is False:
            return False
        delay = echo.delay if echo is not None else None
        return self.policy.echo_tail(stopped, delay, start, voiced_end, text)

    def ignore_echo(self, timeline: CallTimeline, text: str, marks: dict[str, float]) -> None:
        """Say in the call's timeline that a caller "turn" was the agent's echo, not answered."""
        turn = timeline.new_turn("echo")
        turn.user_text = text
        turn.marks.update(marks)
        if self.echo is not None:
            turn.endpointing = [self.echo.describe()]
        turn.settle("ignored")
        log.info("the agent's own echo after it stopped ignored", words=len(words_of(text)))

    def reply_gone(self) -> None:
        """The reply was heard to its end or failed: audio held for it is not held for the next."""
        if self.release_hold():
            self.transport.resume()

    def release_hold(self) -> bool:
        """Forget any hold on the reply's audio (whoever calls this resumes the transport):
        whether there was one."""
        held = self._held_at is not None or (self.overlap is not None and self.overlap.paused)
        self._held_at = None
        if self.overlap is not None:
            self.overlap.paused = False
        return held

    def _check_hold(self, now: float, heard_until: float, voiced_until: float, reply: Reply) -> float | None:
        """A reply held at a voice onset: play on if the voice came to nothing (when to look
        again otherwise)."""
        held_at = self._held_at
        if held_at is None:
            return None
        if not self.policy.onset_hold_over(held_at, heard_until, voiced_until):
            return now + RECHECK
        self._held_at = None
        self.transport.resume()
        log.info("voice over the agent came to nothing", seconds=round(heard_until - held_at, 3))
        reply.timeline.overlaps.append("a voice onset, not speech (paused, then played on)")
        return None

    def take(self) -> Overlap | None:
        overlap, self.overlap = self.overlap, None
        return overlap

    def _play_on(self, overlap: Overlap, reply: Reply) -> None:
        """It was not an interruption: a paused reply plays on from where it stopped."""
        if overlap.let_go:
            return
        overlap.let_go = True
        if self.policy.classify(overlap, reply.spoken_so_far()) is Verdict.IGNORE:
            why = f"backchannel or echo: {overlap.words.strip()!r}"
        else:
            why = "too short to interrupt"
        log.info("speech over the agent ignored", why=why, seconds=round(self.clock.now() - overlap.started, 3))
        reply.timeline.overlaps.append(why + (" (paused, then played on)" if overlap.paused else ""))
        if overlap.paused:
            overlap.paused = False
            self.transport.resume()


RECHECK = 0.02
"""How soon to look again while the caller is still voicing but not yet for long enough."""
