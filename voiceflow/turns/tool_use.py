"""Tool calls inside a reply: run them, keep the caller company while they run, and make their
effects (results in the context, a new conversation state) stick.

The policy, in one place:

* A tool runs only once its reply is for real: a preemptive reply (started before the caller's
  turn was confirmed over) waits, so a caller who goes on talking never triggers a booking.
* Whatever the model said before calling is spoken at once (the reply pauses there).
* A tool still running after its ``filler_after`` gets its ``filler`` line said, once per round.
* The calls of one round run concurrently; barge-in cancels them with the reply.
* The conversation keeps each round as the model wrote it (its calls, then their results), so
  later turns know what was looked up; a round cut off by barge-in is not kept (its calls have
  no results to pair with).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from voiceflow.clock import Clock
from voiceflow.frames import Message, ToolCall
from voiceflow.runtime.reply import CLAUSE_BREAK, ClauseBreak
from voiceflow.tasks import create_task_group
from voiceflow.tools.toolbox import Toolbox, ToolOutcome

if TYPE_CHECKING:
    from voiceflow.turns.replies import ReplyScope

MAX_TOOL_ROUNDS = 4
"""Rounds of tool calls in one reply; a model still calling tools after that is answered with
what it said so far (a loop of calls would otherwise keep the caller waiting for ever)."""


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A call's tools, and where their effects go."""

    toolbox: Toolbox
    state: Callable[[], str | None]
    """The conversation state now (tools are told it)."""
    remember: Callable[[list[Message]], None]
    """Adds a finished round (the calls and their results) to the conversation."""
    switch_state: Callable[[str, str], None]
    """``switch_state(state, tool)``: a tool asked for a new conversation state."""


async def run_tools(
    tools: ToolUse,
    calls: Sequence[ToolCall],
    scope: ReplyScope,
    clock: Clock,
    outcomes: list[ToolOutcome],
) -> AsyncGenerator[str | ClauseBreak, None]:
    """Run one round of ``calls`` into ``outcomes``; yields the filler line if they are slow."""
    await scope.confirmed()
    state = tools.state()
    results: list[ToolOutcome | None] = [None] * len(calls)
    done = anyio.Event()

    async def run_all() -> None:
        async def one(index: int, call: ToolCall) -> None:
            results[index] = await tools.toolbox.run(call, state)

        async with create_task_group() as tg:
            for index, call in enumerate(calls):
                tg.start_soon(one, index, call)
        done.set()

    scope.start_soon(run_all)
    filler = tools.toolbox.filler(calls)
    if filler is not None and not await _finished_within(done, clock, filler[0]):
        yield f" {filler[1]}"
        yield CLAUSE_BREAK
    await done.wait()
    outcomes.extend(result for result in results if result is not None)
    scope.timeline.tools.extend(outcomes)
    tools.remember(exchange(calls, outcomes))
    for outcome in outcomes:
        if outcome.state is not None:
            tools.switch_state(outcome.state, outcome.tool)


def exchange(calls: Sequence[ToolCall], outcomes: Sequence[ToolOutcome], said: str = "") -> list[Message]:
    """A round of tool use as context messages: the model's calls (after what it ``said``, if
    that is to be included), then one result per call."""
    return [
        Message("assistant", said, tool_calls=tuple(calls)),
        *(Message("tool", outcome.content, tool_call_id=outcome.call.id) for outcome in outcomes),
    ]


async def _finished_within(done: anyio.Event, clock: Clock, seconds: float) -> bool:
    """Whether ``done`` is set within ``seconds`` of session-clock time."""
    async with create_task_group() as tg:

        async def give_up() -> None:
            await clock.sleep(seconds)
            tg.cancel_scope.cancel()

        tg.start_soon(give_up)
        await done.wait()
        tg.cancel_scope.cancel()
    return done.is_set()
