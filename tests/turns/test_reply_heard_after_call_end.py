"""A reply's first audio can be acknowledged after the call's turn manager has finished (a
client's late mark, on a loaded server): that must not fail the call. Seen once in a
200-caller soak as "call failed: BrokenResourceError"."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from voiceflow.metrics.timeline import CallTimeline
from voiceflow.turns.events import Event
from voiceflow.turns.replies import ReplyLauncher

pytestmark = pytest.mark.anyio


async def test_first_audio_heard_after_the_manager_closed_its_inbox_is_dropped_quietly() -> None:
    send, receive = anyio.create_memory_object_stream[Event](4)
    launcher = ReplyLauncher(pipeline=Any, timeline=CallTimeline("call", 0.0), inbox=send, spawn=lambda work: None)  # type: ignore[arg-type]
    active = launcher.launch("reply", lambda scope: None, interruptible=True)  # type: ignore[arg-type,return-value]
    assert active.reply.on_first_heard is not None
    active.reply.on_first_heard(active.reply)  # while the call runs: the manager is told
    assert type(receive.receive_nowait()).__name__ == "ReplyHeard"
    receive.close()  # the manager's loop has ended
    active.reply.on_first_heard(active.reply)  # no BrokenResourceError into the transport's task
    send.close()
    active.reply.on_first_heard(active.reply)
