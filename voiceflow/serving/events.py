"""Telling a served call's client about its turns: transcripts, the agent's turns and what was
heard, as ``notify`` events on the call's transport.

The turn manager writes every turn into the session's timeline as it happens (a turn is created
when a reply starts, with the caller's words; its outcome and heard text are filled in when it
ends). The relay watches that timeline (:meth:`CallTimeline.watch
<voiceflow.metrics.timeline.CallTimeline.watch>`) and, woken by a turn that starts or settles,
reports what changed once the runtime's step that changed it is over, so every field of the turn
is in. The serving layer needs nothing from the turn manager's internals, and a quiet call costs
nothing: no task wakes up on a timer for it.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from voiceflow.metrics.timeline import CallTimeline, TurnTimeline
from voiceflow.providers import CallTransport
from voiceflow.runtime.session import Session


class TurnRelay:
    """Reports each turn once as started (with its transcript) and once as ended."""

    def __init__(self, call: CallTransport, on_ended: Callable[[TurnTimeline], None] | None = None) -> None:
        self._call = call
        self._on_ended = on_ended
        """Also told of each ended turn (metrics, traces), from the same poll."""
        self._started = 0
        self._ended: set[int] = set()

    def poll(self, timeline: CallTimeline) -> None:
        """Notify whatever changed in ``timeline`` since the last poll."""
        turns = timeline.turns
        for turn in turns[self._started :]:
            self._call.notify("turn_started", turn=turn.index, kind=turn.kind)
            if turn.user_text:
                self._call.notify("transcript", turn=turn.index, text=turn.user_text)
        self._started = len(turns)
        for turn in turns:
            if turn.outcome != "pending" and turn.index not in self._ended:
                self._ended.add(turn.index)
                self._call.notify("turn_ended", **ended(turn))
                if self._on_ended is not None:
                    self._on_ended(turn)

    async def watch(self, session: Session) -> None:
        """Report each change until cancelled (the call is over), then the last ones."""
        timeline = session.timeline
        changed = anyio.Event()

        def poke() -> None:
            changed.set()  # (the closure holds the relay's event, not the timeline: no cycle)

        stop = timeline.watch(poke)
        try:
            while True:
                self.poll(timeline)
                await changed.wait()
                changed = anyio.Event()
        finally:
            stop()
            self.poll(timeline)


def ended(turn: TurnTimeline) -> dict[str, object]:
    m2e = turn.mouth_to_ear
    return {
        "turn": turn.index,
        "kind": turn.kind,
        "outcome": turn.outcome,
        "agent_text": turn.agent_text,
        "heard_text": turn.heard_text,
        "mouth_to_ear": None if m2e is None else round(m2e, 4),
    }
