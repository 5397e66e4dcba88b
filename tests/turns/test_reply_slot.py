"""The reply in flight (voiceflow/turns/reply_slot.py) on its own: what holding, releasing,
dropping, interrupting and ending a reply leave in the conversation and the timeline."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest

from voiceflow.config.models import UnhappyPaths
from voiceflow.metrics.timeline import CallTimeline
from voiceflow.runtime.reply import Reply
from voiceflow.turns.context import Conversation
from voiceflow.turns.replies import ActiveReply, UserTurn
from voiceflow.turns.reply_slot import Finished, ReplySlot
from voiceflow.turns.unhappy import UnhappyScript

pytestmark = pytest.mark.anyio


class Line:
    """What the slot tells the transport and the overlap watch, in order."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.said.append(name)


def launched(timeline: CallTimeline, kind: str, user_turn: UserTurn | None = None, gated: bool = False) -> ActiveReply:
    """A reply's bookkeeping, as ReplyLauncher makes it before its task runs (none runs here)."""
    turn = timeline.new_turn(kind)
    reply = Reply(len(timeline.turns), kind, True, turn, gate=anyio.Event() if gated else None)
    return ActiveReply(reply, anyio.CancelScope(), user_turn, speculative=gated)


class Clock:
    def now(self) -> float:
        return 1.0


def slot() -> tuple[ReplySlot, Conversation, Line, CallTimeline]:
    conversation = Conversation("Be brief.", 10)
    line = Line()
    timeline = CallTimeline("call", 0.0)
    replies = ReplySlot(conversation=conversation, script=UnhappyScript(UnhappyPaths()), overlaps=cast(Any, line),
                        transport=cast(Any, line), clock=cast(Any, Clock()))
    return replies, conversation, line, timeline


def turn(text: str) -> UserTurn:
    user = UserTurn(start=0.0, segment_start=0.0)
    user.add_final(text, None)
    return user


async def test_a_held_reply_is_released_for_its_turn_and_dropped_for_another() -> None:
    replies, conversation, _, timeline = slot()
    asked = turn("what time is it")
    launched_after: list[int] = []

    def launch() -> ActiveReply:
        launched_after.append(len(conversation.history))
        return launched(timeline, "reply", asked, gated=True)

    replies.hold(asked, launch)
    assert launched_after == [1]  # launched once the caller's words are in the conversation
    assert replies.active is not None and replies.active.speculative
    assert replies.release(asked)
    assert replies.active.reply.gate is not None and replies.active.reply.gate.is_set()
    assert not replies.active.speculative

    replies, conversation, _, timeline = slot()
    replies.hold(asked, lambda: launched(timeline, "reply", asked, gated=True))
    assert not replies.release(turn("what time is it in Paris"))  # the caller went on: a new turn
    assert replies.active is None and conversation.history == []
    assert timeline.turns[0].outcome == "discarded"


async def test_a_held_reply_that_fails_is_remembered_once_and_an_interrupted_one_keeps_what_was_heard() -> None:
    replies, conversation, line, timeline = slot()
    asked = turn("what time is it")
    replies.hold(asked, lambda: launched(timeline, "reply", asked, gated=True))
    held = replies.active
    assert held is not None
    assert replies.ended(held.reply, RuntimeError("llm down")) is None  # never heard: nothing to say
    assert timeline.turns[0].outcome == "failed"
    assert replies.failed_before(asked) and not replies.failed_before(asked)

    active = replies.started(launched(timeline, "reply"))
    active.reply.generated = "It is noon."
    assert replies.interrupt() is active and replies.active is None
    assert line.said[-3:] == ["flush", "release_hold", "resume"]
    assert timeline.turns[-1].outcome == "interrupted"
    assert all("noon" not in m.content for m in conversation.history)  # nothing of it was heard
    assert replies.interrupt() is None
    assert replies.ended(active.reply, None) is None  # its task's end comes later: accounted for


async def test_a_reply_that_ends_says_what_comes_next() -> None:
    replies, conversation, line, timeline = slot()
    done = replies.started(launched(timeline, "reply"))
    done.reply.generated = "Noon."
    assert replies.ended(done.reply, None) == Finished("reply")
    assert conversation.history[-1].content == "Noon." and "agent_finished" in line.said
    failed = replies.started(launched(timeline, "reply"))
    finished = replies.ended(failed.reply, None)  # an empty answer where words were owed
    assert finished is not None and finished.line is not None and finished.line.kind == "apology"
    apology = replies.started(launched(timeline, "apology"))
    assert replies.ended(apology.reply, RuntimeError("tts down")) == Finished("apology")  # not apologised for
