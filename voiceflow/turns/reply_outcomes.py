"""How the end of a reply is written down: its outcome (and failure) in the turn's timeline, and
what of it enters the conversation the LLM sees next.

The rule that matters is barge-in's: an interrupted reply enters the context as the words the
caller heard, not the words generated, so the LLM never believes it said what was cut off.
"""

from __future__ import annotations

import structlog

from voiceflow.redaction import redact
from voiceflow.runtime.reply import Reply
from voiceflow.turns.context import Conversation

log = structlog.get_logger("voiceflow.turns")


def ended(reply: Reply) -> None:
    """What was generated and what was heard, however the reply ended."""
    reply.timeline.agent_text = reply.generated
    reply.timeline.heard_text = reply.heard_text()


def failure_of(reply: Reply, error: BaseException | None) -> BaseException | None:
    """The error the reply ended with, or an empty answer where the LLM owed words."""
    if error is None and reply.kind == "reply" and not reply.generated.strip():
        return RuntimeError("the LLM returned an empty reply")
    return error


def failed(reply: Reply, failure: BaseException) -> None:
    reply.timeline.failure = redact(str(failure))
    reply.timeline.settle("failed")
    log.error("reply failed", kind=reply.kind, error=str(failure))


def completed(reply: Reply, conversation: Conversation) -> None:
    reply.timeline.settle("completed")
    if reply.kind == "reply":
        conversation.add_assistant(reply.generated.strip())


def interrupted(reply: Reply, now: float, conversation: Conversation) -> None:
    """Barge-in: the reply was stopped at ``now``; the context keeps what the caller heard."""
    reply.timeline.mark("interrupted", now)
    reply.timeline.heard_text = reply.heard_text()
    reply.timeline.settle("interrupted")
    if reply.kind == "reply":
        conversation.add_assistant(reply.timeline.heard_text, interrupted=True)
    if reply.first_heard is None:
        log.info("caller went on before the reply was heard: reply cancelled", kind=reply.kind)
    else:
        log.info("barge-in", heard=reply.timeline.heard_text)
