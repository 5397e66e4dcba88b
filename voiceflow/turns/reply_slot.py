"""The agent's one reply in flight, from launch to its end.

A reply is started, or started *held* (speculatively, while the caller's pause is not yet a
confirmed turn end), then released, dropped, interrupted or ended. This keeps the reply and what
each of those steps leaves in the conversation and the timeline; the turn manager decides *when*
each happens (its state machine and timers) and acts on what :meth:`ReplySlot.ended` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voiceflow.clock import Clock
from voiceflow.providers import CallTransport
from voiceflow.runtime.chain import AttemptRecord
from voiceflow.runtime.reply import Reply
from voiceflow.turns import reply_outcomes as outcomes
from voiceflow.turns.context import Conversation
from voiceflow.turns.overlap_watch import OverlapWatch
from voiceflow.turns.replies import ActiveReply, UserTurn
from voiceflow.turns.unhappy import Line, UnhappyScript


@dataclass(frozen=True)
class Finished:
    """The reply in flight ended by itself (not interrupted, not dropped)."""

    kind: str
    line: Line | None = None
    """Said next: the unhappy script's line for a reply that failed."""


class ReplySlot:
    def __init__(
        self,
        *,
        conversation: Conversation,
        script: UnhappyScript,
        overlaps: OverlapWatch,
        transport: CallTransport,
        clock: Clock,
    ) -> None:
        self.conversation = conversation
        self.script = script
        self.overlaps = overlaps
        self.transport = transport
        self.clock = clock
        self.active: ActiveReply | None = None
        self._failed_held: UserTurn | None = None
        """A caller turn whose held reply failed before the turn was confirmed over."""

    def started(self, active: ActiveReply) -> ActiveReply:
        """``active`` (just launched) is the reply in flight now."""
        self.active = active
        return active

    def hold(self, user: UserTurn, launch: Callable[[], ActiveReply]) -> None:
        """Start the reply to ``user`` before the silence confirms their turn over; its audio
        waits for :meth:`release`. ``launch`` starts it (gated) once ``user``'s words are in
        the conversation, which its text is made from."""
        self._failed_held = None
        self.conversation.add_user(user.text)
        user.marks["preemptive_start"] = self.clock.now()
        self.active = launch()

    def release(self, user: UserTurn) -> bool:
        """``user``'s turn is confirmed over: True if the reply held for it may now be heard.
        A reply held for another turn (or one whose words were still awaited) is dropped."""
        active = self.active
        if active is None or not active.speculative:
            return False
        if active.user_turn is user and user.awaiting is None:
            active.speculative = False
            active.reply.timeline.marks.update(user.marks)
            assert active.reply.gate is not None
            active.reply.gate.set()
            self.script.caller_answered()  # the caller was answered, preemptively or not
            return True
        self.drop_held()
        return False

    def drop_held(self) -> None:
        """The caller went on: the held reply was never heard; forget it."""
        active = self.active
        if active is None or not active.speculative:
            return
        active.scope.cancel()
        active.reply.timeline.settle("discarded")
        self.conversation.take_last_user()
        self.active = None

    def failed_before(self, user: UserTurn) -> bool:
        """Whether the reply held for ``user`` failed (then the caller gets an apology, not the
        same timeouts waited out again); answers once."""
        if self._failed_held is user and user.text:
            self._failed_held = None
            return True
        return False

    def interrupt(self) -> ActiveReply | None:
        """Barge-in: stop the reply at once, drop unheard audio, keep what was heard."""
        active, self.active = self.active, None
        if active is None:
            return None
        active.scope.cancel()
        self.transport.flush()
        self.overlaps.release_hold()
        self.transport.resume()  # flushing ended any pause; say so to transports that track it
        outcomes.interrupted(active.reply, self.clock.now(), self.conversation)
        if active.reply.kind == "greeting":
            self.transport.notify("greeting_done")
        return active

    def cancel(self) -> None:
        """The call is ending: stop whatever is in flight, nothing more to account for."""
        if self.active is not None:
            self.active.scope.cancel()

    def ended(self, reply: Reply, error: BaseException | None) -> Finished | None:
        """``reply``'s task has returned. ``None`` when there is nothing more to do: it was
        interrupted or dropped before, or it was held and so never heard."""
        outcomes.ended(reply)
        if reply.kind == "greeting":
            self.transport.notify("greeting_done")  # however it ended: the caller may go on
        active = self.active
        if active is None or active.reply is not reply:
            return None
        self.overlaps.reply_gone()
        failure = outcomes.failure_of(reply, error)
        if active.speculative:
            # Ended before the caller's turn was confirmed over, so nothing was heard. A failure
            # is remembered (see failed_before); anything else is dropped and the endpoint
            # starts afresh.
            self.drop_held()
            if failure is not None:
                outcomes.failed(reply, failure)
                self._failed_held = active.user_turn
            return None
        self.active = None
        if failure is None:
            outcomes.completed(reply, self.conversation)
            self.overlaps.agent_finished(reply)
            return Finished(reply.kind)
        outcomes.failed(reply, failure)
        self.conversation.add_assistant(reply.timeline.heard_text, interrupted=True)
        return Finished(reply.kind, self.script.after_failed_reply(reply.kind, str(failure)))

    def attempted(self, record: AttemptRecord) -> None:
        """A provider of the reply's stages served it (or failed and its chain went on)."""
        if self.active is None:
            return
        turn = self.active.reply.timeline
        if record.error is None:
            turn.providers.setdefault(record.stage, record.provider)
        else:
            turn.fallbacks.append(f"{record.stage}/{record.provider}: {record.error}")
