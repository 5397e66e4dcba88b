"""Per-turn timelines: when each stage asked, answered and was heard.

The headline number is *mouth-to-ear*: from the last voiced sample the caller sent to the first
agent sample the caller heard, both on the session clock and both stamped at the transport, so it
is the gap a listener experiences, not a server-side estimate. Per-stage TTFBs show where that
time went.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voiceflow.metrics.budget import BudgetMiss
    from voiceflow.tools.toolbox import ToolOutcome
    from voiceflow.turns.ivr import IvrDecision

MARKS = (
    "user_speech_start",
    "user_speech_end",
    "vad_end_detected",
    "stt_finalize",
    "stt_final",
    "turn_judged",
    "endpoint",
    "llm_request",
    "llm_first_token",
    "llm_done",
    "first_clause",
    "tts_request",
    "tts_first_audio",
    "first_audio_out",
    "reply_heard",
    "interrupted",
)
"""Known marks, in the order they normally happen (``user_speech_end`` is the end of the caller's
speech; ``first_audio_out`` the first agent sample heard)."""

SPANS = {
    "mouth_to_ear": ("user_speech_end", "first_audio_out"),
    "endpointing": ("user_speech_end", "endpoint"),
    "vad_delay": ("user_speech_end", "vad_end_detected"),
    "stt_ttfb": ("stt_finalize", "stt_final"),
    "llm_ttfb": ("llm_request", "llm_first_token"),
    "tts_ttfb": ("tts_request", "tts_first_audio"),
    "endpoint_to_first_audio": ("endpoint", "first_audio_out"),
    "preemptive_head_start": ("preemptive_start", "endpoint"),
}


@dataclass
class TurnTimeline:
    """One agent turn (a reply to the caller, a greeting, a re-prompt) and the caller turn before it."""

    index: int
    kind: str
    origin: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    user_text: str = ""
    agent_text: str = ""
    heard_text: str = ""
    outcome: str = "pending"
    fallbacks: list[str] = field(default_factory=list)
    failure: str | None = None
    """Why this turn failed, or which failure it apologises for (already redacted)."""
    tools: list[ToolOutcome] = field(default_factory=list)
    """The tool calls the reply made, in order, with their results."""
    overlaps: list[str] = field(default_factory=list)
    """Caller speech over this reply that did not interrupt it, and why."""
    endpointing: list[str] = field(default_factory=list)
    """How the end of the caller's turn was judged (model verdicts, transcript rules)."""
    states: list[str] = field(default_factory=list)
    """Conversation-state switches during this turn (``"spelling (by tool start_spelling)"``)."""
    budget_misses: list[BudgetMiss] = field(default_factory=list)
    """The agent's latency budgets this turn went over, each with the stage to blame."""
    ivr: IvrDecision | None = None
    """When the caller's turn was a recorded menu: what it offered and what the agent did."""
    watchers: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    """Told when the turn settles: its call timeline's watchers (:meth:`CallTimeline.watch`)."""

    def settle(self, outcome: str) -> None:
        """The turn is over (``completed``, ``interrupted``, ``failed``, ...): record it and tell
        whoever watches the call's timeline."""
        self.outcome = outcome
        for watcher in self.watchers:
            watcher()

    def mark(self, name: str, t: float) -> None:
        self.marks[name] = t

    def mark_once(self, name: str, t: float) -> None:
        self.marks.setdefault(name, t)

    def span(self, name: str) -> float | None:
        start, end = SPANS[name]
        if start in self.marks and end in self.marks:
            return self.marks[end] - self.marks[start]
        return None

    @property
    def mouth_to_ear(self) -> float | None:
        return self.span("mouth_to_ear")

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.marks.items(), key=lambda item: item[1])
        return {
            "index": self.index,
            "kind": self.kind,
            "user_text": self.user_text,
            "agent_text": self.agent_text,
            "heard_text": self.heard_text,
            "outcome": self.outcome,
            "providers": self.providers,
            "fallbacks": self.fallbacks,
            "failure": self.failure,
            "tools": [outcome.as_dict(self.origin) for outcome in self.tools],
            "states": self.states,
            "endpointing": self.endpointing,
            "overlaps": self.overlaps,
            "budget_misses": [miss.as_dict() for miss in self.budget_misses],
            "ivr": self.ivr.as_dict() if self.ivr is not None else None,
            "marks": {name: round(t - self.origin, 4) for name, t in ordered},
            "spans": {
                name: round(value, 4)
                for name in SPANS
                if (value := self.span(name)) is not None
            },
        }


@dataclass
class CallTimeline:
    call_id: str
    origin: float
    turns: list[TurnTimeline] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What happened outside any turn: a recogniser that failed or was skipped (circuit open)
    when the call's stream was opened or replaced (already redacted)."""

    _watchers: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    def new_turn(self, kind: str) -> TurnTimeline:
        turn = TurnTimeline(index=len(self.turns), kind=kind, origin=self.origin, watchers=self._watchers)
        self.turns.append(turn)
        for watcher in self._watchers:
            watcher()
        return turn

    def watch(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call ``watcher`` whenever a turn starts or settles; returns the function that stops it.

        It runs at once, inside the runtime's own step, before the turn's other fields are
        filled in: it should only note that something changed (set an event) and read the
        timeline afterwards. It must not hold the timeline itself (the turns hold the watchers,
        and a call's objects must not form reference cycles; see :mod:`voiceflow.tasks`).
        """
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher) if watcher in self._watchers else None

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "notes": self.notes, "turns": [turn.as_dict() for turn in self.turns]}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
