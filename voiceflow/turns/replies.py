"""Launching agent replies: the turn manager decides *when*; this module knows *how*.

A reply is a :class:`~voiceflow.runtime.reply.Reply` (what was said and heard), a cancel scope
(what barge-in cancels), a timeline turn, and a task running the reply pipeline that reports back
to the manager's inbox when it ends. Text comes from a source: the LLM, or a fixed line.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from voiceflow.clock import Clock
from voiceflow.frames import Message
from voiceflow.metrics.timeline import CallTimeline, TurnTimeline
from voiceflow.providers import LLMProvider
from voiceflow.runtime.chain import BadItem, Chain, StageFailed
from voiceflow.runtime.reply import Reply, ReplyPipeline
from voiceflow.turns.events import Event, ReplyEnded, ReplyHeard

log = structlog.get_logger("voiceflow.replies")

TextSource = Callable[[TurnTimeline], AsyncIterator[str]]
"""Makes a reply's text stream; called inside the reply's task with the reply's timeline turn."""


@dataclass
class UserTurn:
    """The caller's turn in progress: voiced segments, transcripts, and marks for the timeline."""

    start: float
    segment_start: float
    voiced: float = 0.0
    finals: list[str] = field(default_factory=list)
    requested: bool = False
    """A final has been asked for in this turn (it is speech, not a cough, from then on)."""
    awaiting: int | None = None
    """The finalize request whose answer completes the turn's transcript, while it is awaited."""
    interim: str = ""
    silence_ok: bool = False
    failure: str | None = None
    """Set when the recogniser failed during this turn: its transcript cannot be trusted."""
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(t for t in self.finals if t).strip() or self.interim.strip()


@dataclass
class ActiveReply:
    reply: Reply
    scope: anyio.CancelScope
    user_turn: UserTurn | None
    speculative: bool = False


def fixed_text(text: str) -> TextSource:
    async def source(turn: TurnTimeline) -> AsyncIterator[str]:
        yield text

    return source


MAX_REPLY_CHARS = 4000
"""A spoken reply longer than this (about four minutes of speech) is a model that will not stop
(a runaway generation, a server streaming forever): what was written is said, the rest dropped."""

CONTINUE_INSTRUCTION = (
    "Your reply above was cut off by a technical fault. Continue it from exactly where it stopped, "
    "without repeating any of it."
)


def llm_text(llm: Chain[LLMProvider[Any]], clock: Clock, messages: list[Message]) -> TextSource:
    """The LLM's reply to ``messages``, taken now (not when the reply task first runs).

    If the serving LLM fails mid-reply and the chain has another, the reply goes on there: the
    text written so far stays (some of it may already be playing) and the next model is asked to
    continue it, so the caller hears one reply, not a broken one and an apology.
    """

    async def source(turn: TurnTimeline) -> AsyncGenerator[str, None]:
        turn.mark("llm_request", clock.now())
        written = ""
        first = 0
        while True:
            request = messages if not written else [
                *messages, Message("assistant", written.rstrip()), Message("system", CONTINUE_INSTRUCTION)
            ]
            deltas = llm.stream(_reply_to(request), first=first, check=check_text_delta, nonempty=True,
                                substantive=bool)
            try:
                async with aclosing(deltas):
                    async for delta in deltas:
                        turn.mark_once("llm_first_token", clock.now())
                        written += delta
                        yield delta
                        if len(written) > MAX_REPLY_CHARS:
                            log.warning("LLM reply cut at the length limit", chars=len(written))
                            turn.fallbacks.append(f"llm: reply cut at {MAX_REPLY_CHARS} characters")
                            break
                break
            except StageFailed as failure:
                if failure.served_by is None or failure.served_by + 1 >= len(llm.providers):
                    raise
                first = failure.served_by + 1
                log.warning("LLM failed mid-reply: the next one continues it",
                            provider=llm.providers[failure.served_by].name)
                if written and not written[-1].isspace():
                    written += " "
                    yield " "
        turn.mark("llm_done", clock.now())

    return source


def _reply_to(messages: list[Message]) -> Callable[[LLMProvider[Any]], AsyncIterator[str]]:
    return lambda provider: provider.stream(messages)


def check_text_delta(delta: str) -> None:
    """An LLM must stream text; anything else is that provider's failure, not a crash."""
    if not isinstance(delta, str):
        raise BadItem(f"produced {type(delta).__name__}, not text")


@dataclass
class ReplyLauncher:
    pipeline: ReplyPipeline
    timeline: CallTimeline
    inbox: MemoryObjectSendStream[Event]
    spawn: Callable[[Callable[[], Any]], None]
    _ids: int = 0

    def launch(
        self,
        kind: str,
        source: TextSource,
        *,
        interruptible: bool,
        user_turn: UserTurn | None = None,
        gated: bool = False,
    ) -> ActiveReply:
        turn = self.timeline.new_turn(kind)
        # The manager's own log lines from here on, and the reply's tasks, carry this turn's id.
        structlog.contextvars.bind_contextvars(turn_id=turn.index)
        if user_turn is not None:
            turn.marks.update(user_turn.marks)
            turn.user_text = user_turn.text
        self._ids += 1
        reply = Reply(self._ids, kind, interruptible, turn, on_first_heard=self._first_heard,
                      gate=anyio.Event() if gated else None)
        active = ActiveReply(reply, anyio.CancelScope(), user_turn, speculative=gated)

        async def run() -> None:
            error: BaseException | None = None
            with active.scope:
                try:
                    await self.pipeline.speak(reply, source(turn))
                except Exception as exc:  # noqa: BLE001 - reported to the state machine
                    error = _root_cause(exc)
            await self.inbox.send(ReplyEnded(reply, error, active.scope.cancel_called))

        self.spawn(run)
        return active

    def _first_heard(self, reply: Reply) -> None:
        self.inbox.send_nowait(ReplyHeard(reply))


def _root_cause(exc: Exception) -> Exception:
    """The reply's own task group wraps a stage failure in an ExceptionGroup; report the failure."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
