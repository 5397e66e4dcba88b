"""Launching agent replies: the turn manager decides *when*; this module knows *how*.

A reply is a :class:`~voiceflow.runtime.reply.Reply` (what was said and heard), a cancel scope
(what barge-in cancels), a timeline turn, and a task running the reply pipeline that reports back
to the manager's inbox when it ends. Text comes from a source: the LLM, or a fixed line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from voiceflow.clock import Clock
from voiceflow.frames import Message, ToolCall, ToolSpec
from voiceflow.metrics.timeline import CallTimeline, TurnTimeline
from voiceflow.providers import LLMProvider
from voiceflow.runtime.chain import BadItem, Chain, StageFailed
from voiceflow.runtime.reply import CLAUSE_BREAK, ClauseBreak, Reply, ReplyPipeline, ReplyText
from voiceflow.tasks import create_task_group
from voiceflow.tools.toolbox import ToolOutcome
from voiceflow.turns.events import Inbox, ReplyEnded, ReplyHeard
from voiceflow.turns.tool_use import MAX_TOOL_ROUNDS, ToolUse, exchange, run_tools

log = structlog.get_logger("voiceflow.replies")



@dataclass(frozen=True, slots=True)
class ReplyScope:
    """What a reply's text source may use besides its timeline turn."""

    timeline: TurnTimeline
    start_soon: Callable[[Callable[[], Coroutine[Any, Any, None]]], object]
    """Runs work alongside the reply (a tool), cancelled with it at barge-in."""
    confirmed: Callable[[], Awaitable[None]]
    """Returns once the reply is for real: a preemptive reply waits until the caller's turn is
    confirmed over (nothing with effects, such as a tool, may run before)."""


TextSource = Callable[[ReplyScope], ReplyText]
"""Makes a reply's text stream; called inside the reply's task."""


MIN_CONFIDENCE = 1e-6
"""A final scored 0 counts as this, so that its words still weigh in the turn's mean."""


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
    endpoint_notes: list[str] = field(default_factory=list)
    """How the end of this turn was judged (an end-of-turn model's verdict, a transcript rule)."""
    _log_confidence: float = 0.0
    _scored_words: int = 0

    @property
    def text(self) -> str:
        return " ".join(t for t in self.finals if t).strip() or self.interim.strip()

    def add_final(self, text: str, confidence: float | None) -> None:
        """Add a final transcript of the turn, with the recogniser's confidence in it, if any."""
        self.finals.append(text)
        words = len(text.split())
        if confidence is not None and words:
            self._log_confidence += words * math.log(max(confidence, MIN_CONFIDENCE))
            self._scored_words += words

    def continues(self, earlier: UserTurn) -> None:
        """This turn carries on ``earlier`` (the agent had said nothing of its reply yet): its
        words, and what the recogniser thought of them, are this turn's too."""
        self.finals = [earlier.text]
        self._log_confidence, self._scored_words = earlier._log_confidence, earlier._scored_words
        self.requested = True
        self.voiced = earlier.voiced

    @property
    def confidence(self) -> float | None:
        """The recogniser's confidence over the turn's finals, weighted by their words
        (``None``: it reported none).

        A geometric mean, as recognisers score a transcript (Whisper: the geometric mean of its
        tokens' probabilities), so the turn scores about as if it had been decoded in one piece.
        Not the least of the finals': Whisper gives a lone "Hi" 0.13-0.21 where it gives the
        question after it 0.70, and the caller's clear question must not be asked again because
        they greeted first.
        """
        if not self._scored_words:
            return None
        return math.exp(self._log_confidence / self._scored_words)


@dataclass
class ActiveReply:
    reply: Reply
    scope: anyio.CancelScope
    user_turn: UserTurn | None
    speculative: bool = False


def fixed_text(text: str) -> TextSource:
    async def source(scope: ReplyScope) -> AsyncIterator[str]:
        yield text

    return source


MAX_REPLY_CHARS = 4000
"""A spoken reply longer than this (about four minutes of speech) is a model that will not stop
(a runaway generation, a server streaming forever): what was written is said, the rest dropped."""

CONTINUE_INSTRUCTION = (
    "Your reply above was cut off by a technical fault. Continue it from exactly where it stopped, "
    "without repeating any of it."
)


def llm_text(
    llm: Chain[LLMProvider[Any]], clock: Clock, messages: list[Message], tools: ToolUse | None = None
) -> TextSource:
    """The LLM's reply to ``messages``, taken now (not when the reply task first runs).

    With ``tools``, the model may call them: the text it wrote so far is said, the calls run
    (with a filler line if they are slow), and the model is asked again with their results, up
    to :data:`~voiceflow.turns.tool_use.MAX_TOOL_ROUNDS` times.
    """

    async def source(scope: ReplyScope) -> AsyncGenerator[str | ClauseBreak, None]:
        turn = scope.timeline
        turn.mark("llm_request", clock.now())
        request = list(messages)
        total = 0
        for rounds in itertools.count():
            calls: list[ToolCall] = []
            written = ""
            items = _llm_round(llm, request, tools.toolbox.specs if tools else ())
            async with aclosing(items):
                async for item in items:
                    if isinstance(item, ToolCall):
                        calls.append(item)
                        continue
                    turn.mark_once("llm_first_token", clock.now())
                    written += item
                    total += len(item)
                    yield item
                    if total > MAX_REPLY_CHARS:
                        log.warning("LLM reply cut at the length limit", chars=total)
                        turn.fallbacks.append(f"llm: reply cut at {MAX_REPLY_CHARS} characters")
                        calls = []
                        break
            if not calls or tools is None:
                break
            if rounds >= MAX_TOOL_ROUNDS:
                log.warning("LLM kept calling tools: its calls are dropped", rounds=rounds)
                turn.fallbacks.append(f"llm: tool calls dropped after {MAX_TOOL_ROUNDS} rounds")
                break
            yield CLAUSE_BREAK
            outcomes: list[ToolOutcome] = []
            async for filler in run_tools(tools, calls, scope, clock, outcomes):
                yield filler
            request += exchange(calls, outcomes, said=written)
            if total:
                yield " "  # the next round's text is a new sentence of the same reply
        turn.mark("llm_done", clock.now())

    return source


async def _llm_round(
    llm: Chain[LLMProvider[Any]], messages: list[Message], tools: Sequence[ToolSpec]
) -> AsyncGenerator[str | ToolCall, None]:
    """One request to the LLM chain. If the serving LLM fails mid-reply and the chain has
    another, the reply goes on there: the text written so far stays (some of it may already be
    playing) and the next model is asked to continue it, so the caller hears one reply, not a
    broken one and an apology."""
    written = ""
    first = 0
    while True:
        request = messages if not written else [
            *messages, Message("assistant", written.rstrip()), Message("system", CONTINUE_INSTRUCTION)
        ]
        deltas = llm.stream(_reply_to(request, tools), first=first, check=check_llm_item, nonempty=True,
                            substantive=bool)
        try:
            async with aclosing(deltas):
                async for delta in deltas:
                    if isinstance(delta, str):
                        written += delta
                    yield delta
            return
        except StageFailed as failure:
            if failure.served_by is None or failure.served_by + 1 >= len(llm.providers):
                raise
            first = failure.served_by + 1
            log.warning("LLM failed mid-reply: the next one continues it",
                        provider=llm.providers[failure.served_by].name)
            if written and not written[-1].isspace():
                written += " "
                yield " "


def _reply_to(
    messages: list[Message], tools: Sequence[ToolSpec]
) -> Callable[[LLMProvider[Any]], AsyncIterator[str | ToolCall]]:
    if not tools:
        return lambda provider: provider.stream(messages)
    return lambda provider: provider.stream_with_tools(messages, tools)


def check_llm_item(item: str | ToolCall) -> None:
    """An LLM must stream text (or tool calls); anything else is that provider's failure, not a
    crash."""
    if not isinstance(item, str | ToolCall):
        raise BadItem(f"produced {type(item).__name__}, not text")


@dataclass
class ReplyLauncher:
    pipeline: ReplyPipeline
    timeline: CallTimeline
    inbox: Inbox
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
        play: Callable[[Reply], Awaitable[None]] | None = None,
    ) -> ActiveReply:
        """``play``: the reply is this audio (keypad tones), not ``source``'s text spoken."""
        turn = self.timeline.new_turn(kind)
        # The manager's own log lines from here on, and the reply's tasks, carry this turn's id.
        structlog.contextvars.bind_contextvars(turn_id=turn.index)
        if user_turn is not None:
            turn.marks.update(user_turn.marks)
            turn.user_text = user_turn.text
            turn.endpointing = user_turn.endpoint_notes
        self._ids += 1
        reply = Reply(self._ids, kind, interruptible, turn, on_first_heard=self._first_heard,
                      gate=anyio.Event() if gated else None)
        active = ActiveReply(reply, anyio.CancelScope(), user_turn, speculative=gated)

        async def confirmed() -> None:
            if reply.gate is not None:
                await reply.gate.wait()

        async def run() -> None:
            error: BaseException | None = None
            with active.scope:
                try:
                    async with create_task_group() as alongside:
                        scope = ReplyScope(turn, lambda work: alongside.start_soon(work), confirmed)
                        if play is not None:
                            await play(reply)
                        else:
                            await self.pipeline.speak(reply, source(scope))
                        alongside.cancel_scope.cancel()
                except Exception as exc:  # noqa: BLE001 - reported to the state machine
                    error = _root_cause(exc)
            await self.inbox.send(ReplyEnded(reply, error, active.scope.cancel_called))

        self.spawn(run)
        return active

    def _first_heard(self, reply: Reply) -> None:
        """Called from the transport's task (a played mark), which may come after the manager
        has finished and closed its inbox: the call is over, and nobody is left to tell."""
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.inbox.send_nowait(ReplyHeard(reply))


def _root_cause(exc: Exception) -> Exception:
    """The reply's own task group wraps a stage failure in an ExceptionGroup; report the failure."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
