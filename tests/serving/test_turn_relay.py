"""The turn relay tells a served call's client about each turn as it starts and as it settles,
woken by the timeline itself: every field of the turn is in, and a quiet call costs no wake-ups."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from voiceflow.metrics.timeline import CallTimeline, TurnTimeline
from voiceflow.providers import CallTransport
from voiceflow.runtime.session import Session
from voiceflow.serving.events import TurnRelay

pytestmark = pytest.mark.anyio


class Client:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def notify(self, event: str, **data: Any) -> None:
        self.events.append((event, data))


async def settled() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_turns_are_reported_as_they_start_and_settle_with_every_field_in() -> None:
    client, ended = Client(), list[TurnTimeline]()
    relay = TurnRelay(cast(CallTransport, client), on_ended=ended.append)
    timeline = CallTimeline("c1", origin=0.0)
    session = cast(Session, SimpleNamespace(timeline=timeline))
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.watch, session)
        await settled()
        turn = timeline.new_turn("reply")
        turn.user_text = "what time is it"  # filled in after the turn was added, in the same step
        await settled()
        assert client.events == [("turn_started", {"turn": 0, "kind": "reply"}),
                                 ("transcript", {"turn": 0, "text": "what time is it"})]
        turn.settle("interrupted")
        turn.heard_text = "it is"  # (likewise after the outcome)
        await settled()
        assert client.events[-1][0] == "turn_ended"
        assert client.events[-1][1]["outcome"] == "interrupted" and client.events[-1][1]["heard_text"] == "it is"
        assert ended == [turn]
        tg.cancel_scope.cancel()
    assert timeline._watchers == []  # the relay stopped watching when the call ended


async def test_a_quiet_call_does_not_wake_its_relay() -> None:
    relay = TurnRelay(cast(CallTransport, Client()))
    polls: list[int] = []
    plain_poll = relay.poll
    relay.poll = lambda timeline: (polls.append(len(timeline.turns)), plain_poll(timeline))  # type: ignore[method-assign]
    timeline = CallTimeline("c2", origin=0.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.watch, cast(Session, SimpleNamespace(timeline=timeline)))
        await anyio.sleep(0.35)  # a relay on a timer would have read the timeline several times
        assert polls == [0]
        timeline.new_turn("greeting")
        await settled()
        assert polls == [0, 1]
        tg.cancel_scope.cancel()


async def test_what_changed_as_the_call_ended_is_still_reported() -> None:
    client = Client()
    relay = TurnRelay(cast(CallTransport, client))
    timeline = CallTimeline("c3", origin=0.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.watch, cast(Session, SimpleNamespace(timeline=timeline)))
        await settled()
        timeline.new_turn("goodbye").settle("completed")
        tg.cancel_scope.cancel()  # cancelled before the relay's next step
    assert [event for event, _ in client.events] == ["turn_started", "turn_ended"]
