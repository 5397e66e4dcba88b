"""Telling a served call's client about its turns: transcripts, the agent's turns and what was
heard, as ``notify`` events on the call's transport.

The turn manager writes every turn into the session's timeline as it happens (a turn is created
when a reply starts, with the caller's words; its outcome and heard text are filled in when it
ends). The relay reads that timeline a few times a second and reports what changed, so the
serving layer needs nothing from the turn manager's internals. A lifecycle-observer hook in the
turn manager would make the events immediate; until then a tenth of a second is well inside what
a transcript display needs.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from voiceflow.metrics.timeline import CallTimeline, TurnTimeline
from voiceflow.providers import CallTransport
from voiceflow.runtime.session import Session

POLL_SECONDS = 0.1


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
        """Poll until cancelled (the call is over), then report the last changes."""
        try:
            while True:
                self.poll(session.timeline)
                await anyio.sleep(POLL_SECONDS)
        finally:
            self.poll(session.timeline)


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
