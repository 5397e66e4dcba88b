"""What a finished caller turn is for: the LLM, a line of the unhappy-path script, or nothing.

Most turns go to the LLM. Some must not: an empty or unsure transcript (asked again), a turn the
recogniser failed on (apologised for), hold music or noise while the caller has the agent on
hold (ignored), a request to hold (acknowledged with a fixed line, then a quiet wait). Deciding
it in one place means the preemptive reply, which starts before the turn is confirmed, follows
exactly the same rules as the confirmed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from voiceflow.compute import run_in_thread
from voiceflow.frames import SAMPLE_RATE
from voiceflow.metrics.timeline import CallTimeline, TurnTimeline
from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.music import MusicVerdict
from voiceflow.turns.hold import HoldWatch
from voiceflow.turns.ivr import IvrAction, IvrDecision, IvrWatch
from voiceflow.turns.replies import UserTurn
from voiceflow.turns.unhappy import Line, UnhappyScript


class Route(Enum):
    LLM = "llm"
    SCRIPT = "script"
    """Answered with ``line`` (unclear, low confidence, a failure's apology)."""
    HOLD = "hold"
    """A request to hold: acknowledged with ``line``, then a quiet wait."""
    IGNORE = "ignore"
    """Music, or noise while on hold: not answered at all."""
    IVR = "ivr"
    """A recorded menu: keys pressed, ``line`` said, or a quiet wait (``ivr`` says which)."""


@dataclass(frozen=True, slots=True)
class Triage:
    route: Route
    line: Line | None = None
    music: MusicVerdict | None = None
    ivr: IvrDecision | None = None


def unanswered(
    timeline: CallTimeline, kind: str, user: UserTurn, notes: list[str] | None = None, outcome: str = "ignored"
) -> TurnTimeline:
    """The timeline's record of a caller turn the agent did not answer with speech (music, a
    menu waited through, keys sent out of band): who said what, and why."""
    turn = timeline.new_turn(kind)
    turn.user_text, turn.outcome, turn.endpointing = user.text, outcome, notes or []
    turn.marks.update(user.marks)
    return turn


class TurnTriage:
    def __init__(self, script: UnhappyScript, hold: HoldWatch, tail: AudioTail | None, ivr: IvrWatch) -> None:
        self.script = script
        self.hold = hold
        self.tail = tail
        self.ivr = ivr
        self._judged: tuple[tuple[float, float], MusicVerdict | None] | None = None
        """The music verdict on the last pause's turn: judged in a worker thread while the
        pause is being confirmed (:meth:`prejudge`), so the endpoint and a preemptive reply's
        check find it ready instead of running the FFTs on the event loop (2 ms for 8 s of
        audio on an idle 2-core machine, 5–10 ms on a busy one)."""

    def judge(self, user: UserTurn) -> Triage:
        music = self._music(user)
        if music is not None:
            return Triage(Route.IGNORE, music=music)
        if user.failure is None and self.ivr.is_menu(user.text):
            decision = self.ivr.decide(user.text)
            say = self.ivr.settings().say
            line = Line("ivr", say) if decision.action is IvrAction.SAY and say is not None else None
            return Triage(Route.IVR, line, ivr=decision)
        if self.hold.asks_to_hold(user.text):
            return Triage(Route.HOLD, Line("hold", self.hold.settings.say))
        line = self.script.for_caller_turn(user.text, user.failure, user.confidence)
        if line is None:
            return Triage(Route.LLM)
        if self.hold.until is not None and user.failure is None:
            return Triage(Route.IGNORE)  # a sound on the line while the caller is away
        return Triage(Route.SCRIPT, line)

    def _music(self, user: UserTurn) -> MusicVerdict | None:
        end = user.marks.get("user_speech_end")
        if end is None:
            return None
        if self._judged is None or self._judged[0] != (user.start, end):
            self._judged = ((user.start, end), self.music_until(user, end))
        return self._judged[1]

    async def prejudge(self, user: UserTurn | None, end: float) -> None:
        """Judge the turn up to the pause at ``end`` for music off the event loop. If the turn
        ends before this returns, :meth:`judge` does it itself (same verdict, on the loop)."""
        if user is None or self.tail is None or not self.hold.settings.detect_music:
            return
        pcm = self._audio(user, end)
        verdict = await run_in_thread(self.hold.music, pcm)
        self._judged = ((user.start, end), verdict)

    def music_until(self, user: UserTurn, end: float) -> MusicVerdict | None:
        """The music verdict on the caller's turn from its start to audio time ``end`` (it may
        still be going on)."""
        if self.tail is None:
            return None
        return self.hold.music(self._audio(user, end))

    def _audio(self, user: UserTurn, end: float) -> bytes:
        assert self.tail is not None
        pcm = self.tail.until(end)
        return pcm[-2 * round((end - user.start) * SAMPLE_RATE) :]
