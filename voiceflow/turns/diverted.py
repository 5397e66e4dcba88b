"""Caller turns that triage keeps from the LLM: a request to hold, music, noise on hold, a
recorded menu, the agent's own echo. Each is acknowledged with a fixed line, keys, or a quiet
wait, and recorded in the timeline as what it was.

This lives outside the turn manager so the manager only routes (``triage.route``) and each
unhappy path keeps its own rules here; what a policy may do with the agent's voice is the
narrow :class:`Floor` the manager implements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from voiceflow.clock import Clock
from voiceflow.config.models import UnhappyPaths
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.providers import CallTransport
from voiceflow.runtime.keys import play_keys
from voiceflow.runtime.reply import Reply
from voiceflow.turns.context import Conversation
from voiceflow.turns.hold import HoldWatch
from voiceflow.turns.ivr import IN_BAND, IvrAction
from voiceflow.turns.overlap_watch import OverlapWatch
from voiceflow.turns.replies import ActiveReply, TextSource, UserTurn, fixed_text
from voiceflow.turns.triage import Route, Triage, TurnTriage, unanswered
from voiceflow.turns.unhappy import Line

log = structlog.get_logger("voiceflow.turns")


class Floor(Protocol):
    """What a turn policy may do with the agent's voice."""

    def say(self, line: Line, *, user_turn: UserTurn | None = None) -> ActiveReply: ...

    def start_reply(
        self,
        kind: str,
        source: TextSource,
        *,
        interruptible: bool,
        user_turn: UserTurn | None = None,
        play: Callable[[Reply], Awaitable[None]] | None = None,
    ) -> ActiveReply: ...

    def drop_held_reply(self) -> None:
        """Forget a reply prepared during the pause (never heard), if there is one."""
        ...

    def listen(self) -> None:
        """Nothing to say: wait for the caller (re-prompt timers and all)."""
        ...


class DivertedTurns:
    def __init__(
        self,
        floor: Floor,
        *,
        unhappy: Callable[[], UnhappyPaths],
        triage: TurnTriage,
        hold: HoldWatch,
        overlaps: OverlapWatch,
        conversation: Conversation,
        timeline: CallTimeline,
        transport: CallTransport,
        clock: Clock,
    ) -> None:
        self.floor = floor
        self.unhappy = unhappy
        self.triage = triage
        self.hold = hold
        self.overlaps = overlaps
        self.conversation = conversation
        self.timeline = timeline
        self.transport = transport
        self.clock = clock

    def take(self, user: UserTurn, triage: Triage) -> bool:
        """Handle ``user`` if its route is not the LLM's; False leaves it to the manager."""
        match triage.route:
            case Route.IVR:
                self._menu(user, triage)
            case Route.HOLD | Route.IGNORE:
                self._held(user, triage)
            case Route.LLM | Route.SCRIPT:
                return False
        return True

    def echo(self, user: UserTurn) -> None:
        """The agent's own last words came back after it stopped: not the caller, not answered."""
        self.floor.drop_held_reply()
        self.overlaps.ignore_echo(self.timeline, user.text, user.marks)
        self.floor.listen()

    def music_started(self, user: UserTurn) -> bool:
        """Music judged while it plays (turns/hold.py): the hold line is said as it starts, not
        when it stops. True if it was: the music so far is an ignored turn, and the manager
        starts a new one for whatever follows."""
        now = self.clock.now()
        music = self.triage.music_until(user, now)
        line = self.hold.music_line() if music is not None else None
        if music is None or line is None:
            return False
        self.hold.hold(now)
        unanswered(self.timeline, "music", user, [music.describe()])
        self.floor.say(Line("hold", line, interruptible=False))
        return True

    def _held(self, user: UserTurn, triage: Triage) -> None:
        """Music, a request to hold, or noise while on hold: never answered by the LLM (a held
        reply already started for it is dropped)."""
        self.floor.drop_held_reply()
        self.hold.hold(self.clock.now())
        if triage.route is Route.HOLD and triage.line is not None:
            self.conversation.add_user(user.text)
            self.conversation.add_assistant(triage.line.text)
            self.floor.say(triage.line, user_turn=user)
            return
        music = triage.music
        unanswered(self.timeline, "music" if music is not None else "noise on hold", user,
                   [music.describe()] if music is not None else [])
        log.info("caller turn ignored on hold", music=music is not None)
        line = self.hold.music_line() if music is not None else None
        if line is not None:
            self.floor.say(Line("hold", line))
        else:
            self.floor.listen()

    def _menu(self, user: UserTurn, triage: Triage) -> None:
        """A recorded menu (turns/ivr.py): keys, the file's line or a quiet wait, never the LLM;
        then a quiet wait for the person behind it. Keys cannot be interrupted: a menu talks on
        while its keys are pressed."""
        assert triage.ivr is not None
        self.floor.drop_held_reply()
        self.hold.hold(self.clock.now(), self.unhappy().ivr.max_wait)
        decision, transport = self.triage.ivr.act(triage.ivr, self.transport.send_dtmf), self.transport
        if decision.sent == IN_BAND:
            active = self.floor.start_reply("keys", fixed_text(decision.keys), interruptible=False, user_turn=user,
                                            play=lambda reply: play_keys(reply, decision.keys, transport))
        elif decision.action is IvrAction.SAY and triage.line is not None:
            active = self.floor.say(triage.line, user_turn=user)
        else:
            unanswered(self.timeline, decision.turn_kind, user, outcome=decision.outcome).ivr = decision
            self.floor.listen()
            return
        active.reply.timeline.ivr = decision
