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
from voiceflow.turns.replies import ActiveReply, UserTurn, fixed_text
from voiceflow.turns.reply_slot import Finished, ReplySlot
from voiceflow.turns.unhappy import UnhappyScript

pytestmark = pytest.mark.anyio


class Line:
    """What the slot tells the transport and the overlap watch, in order."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.said.append(name)


class Launcher:
    """Launches nothing: makes the reply's bookkeeping, as ReplyLauncher does before its task."""

    def __init__(self, timeline: CallTimeline) -> None:
        self.timeline = timeline

    def launch(self, kind: str, source: Any, *, interruptible: bool, user_turn: UserTurn | None = None,
               gated: bool = False, play: Any = None) -> ActiveReply:
        turn = self.timeline.new_turn(kind)
        reply = Reply(len(self.timeline.turns), kind, interruptible, turn, gate=anyio.Event() if gated else None)
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
    replies.launcher = cast(Any, Launcher(timeline))
    return replies, conversation, line, timeline


def turn(text: str) -> UserTurn:
    user = UserTurn(start=0.0, segment_start=0.0)
    user.add_final(text, None)
    return user


async def test_a_held_reply_is_released_for_its_turn_and_dropped_for_another() -> None:
    replies, conversation, _, timeline = slot()
    asked = turn("what time is it")
    made_from: list[int] = []

    def reply_to() -> Any:
        made_from.append(len(conversation.history))
        return fixed_text("Noon.")

    replies.hold(asked, reply_to)
    assert made_from == [1]  # the text is made once the caller's words are in the conversation
    assert replies.active is not None and replies.active.speculative
    assert replies.release(asked)
    assert replies.active.reply.gate is not None and replies.active.reply.gate.is_set()
    assert not replies.active.speculative

    replies, conversation, _, timeline = slot()
    replies.hold(asked, lambda: fixed_text("Noon."))
    assert not replies.release(turn("what time is it in Paris"))  # the caller went on: a new turn
    assert replies.active is None and conversation.history == []
    assert timeline.turns[0].outcome == "discarded"


async def test_a_held_reply_that_fails_is_remembered_once_and_an_interrupted_one_keeps_what_was_heard() -> None:
    replies, conversation, line, timeline = slot()
    asked = turn("what time is it")
    replies.hold(asked, lambda: fixed_text("Noon."))
    held = replies.active
    assert held is not None
    assert replies.ended(held.reply, RuntimeError("llm down")) is None  # never heard: nothing to say
    assert timeline.turns[0].outcome == "failed"
    assert replies.failed_before(asked) and not replies.failed_before(asked)

    active = replies.launch("reply", fixed_text("It is noon."), interruptible=True)
    active.reply.generated = "It is noon."
    assert replies.interrupt() is active and replies.active is None
    assert line.said[-3:] == ["flush", "release_hold", "resume"]
    assert timeline.turns[-1].outcome == "interrupted"
    assert all("noon" not in m.content for m in conversation.history)  # nothing of it was heard
    assert replies.interrupt() is None
    assert replies.ended(active.reply, None) is None  # its task's end comes later: accounted for


async def test_a_reply_that_ends_says_what_comes_next() -> None:
    replies, conversation, line, _ = slot()
    done = replies.launch("reply", fixed_text("Noon."), interruptible=True)
    done.reply.generated = "Noon."
    assert replies.ended(done.reply, None) == Finished("reply")
    assert conversation.history[-1].content == "Noon." and "agent_finished" in line.said
    failed = replies.launch("reply", fixed_text(""), interruptible=True)
    finished = replies.ended(failed.reply, None)  # an empty answer where words were owed
    assert finished is not None and finished.line is not None and finished.line.kind == "apology"
    apology = replies.launch("apology", fixed_text("Sorry."), interruptible=True)
    assert replies.ended(apology.reply, RuntimeError("tts down")) == Finished("apology")  # not apologised for
