"""Watching served calls from outside: when a call starts, as each of its turns ends, when it ends.

Metrics (:mod:`voiceflow.metrics.prometheus`) and traces (:mod:`voiceflow.metrics.tracing`) want
the same three moments of every call, and both read them from what the runtime already records:
the session (its id and clock) when the call starts, each :class:`TurnTimeline` once its outcome
is known, the :class:`CallResult` at the end. Nothing here reaches into the turn manager; the
serving host reports the moments (:class:`ObservedCall`), reusing the poll that already tells the
client about its turns.

An observer that raises is logged and forgotten for that call: reporting must never end a call.

The labels and stage table that both consumers use live here too, so a dashboard's
``outcome="caller_hung_up"`` and a trace's ``voiceflow.call.outcome`` always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, Protocol, TypeVar

import structlog

from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.runtime.runner import Companion
from voiceflow.runtime.session import CallResult, Session

P = ParamSpec("P")
R = TypeVar("R")

log = structlog.get_logger("voiceflow.observe")

DRAIN_REASON = "server draining"
"""Why a drained call ended (``voiceflow.serving.server.DRAIN_REASON``; a test keeps them equal)."""
ABANDONED = "cut off: server stopped"
"""What a call is said to have ended with when serving itself was cancelled under it."""


class CallWatch(Protocol):
    """One observer's view of one call."""

    def turn_ended(self, turn: TurnTimeline) -> None:
        """``turn`` is over (its outcome is no longer ``pending``), or the call ended under it."""

    def call_ended(self, result: CallResult) -> None:
        """The call is over; called once, after every turn was reported."""


class CallObserver(Protocol):
    """Something that wants to hear about every served call (metrics, traces)."""

    def call_started(self, agent: str, session: Session) -> CallWatch:
        """A call of ``agent`` has started; the returned watch hears the rest of it."""

    def refused(self, agent: str, reason: str) -> None:
        """A call of ``agent`` was not admitted (``busy``, ``draining``, ``starting``)."""


class ObservedCall:
    """Reports one call to every observer: started once its session exists, each turn once, ended
    once, whatever way the call ends. Use as a context manager around running the call, so a run
    that is cancelled from outside still ends the observation (as :data:`ABANDONED`)."""

    def __init__(self, observers: Sequence[CallObserver], agent: str) -> None:
        self._observers = observers
        self._agent = agent
        self._watches: list[CallWatch] = []
        self._session: Session | None = None
        self._reported: set[int] = set()
        self._ended = False

    def started(self, session: Session) -> None:
        self._session = session
        for observer in self._observers:
            watch = _guarded(observer.call_started, self._agent, session)
            if watch is not None:
                self._watches.append(watch)

    def watching(self, companion: Companion) -> Companion:
        """``companion`` (run beside the call for as long as it lasts) that first reports the start."""

        async def observed(session: Session) -> None:
            self.started(session)
            await companion(session)

        return observed

    def turn_ended(self, turn: TurnTimeline) -> None:
        if turn.index in self._reported:
            return
        self._reported.add(turn.index)
        for watch in self._watches:
            _guarded(watch.turn_ended, turn)

    def ended(self, result: CallResult) -> None:
        """The call is over: any turn not yet reported (cut off mid-reply) first, then the call."""
        if self._ended:
            return
        self._ended = True
        for turn in result.timeline.turns:
            self.turn_ended(turn)
        for watch in self._watches:
            _guarded(watch.call_ended, result)

    def __enter__(self) -> ObservedCall:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._ended and self._session is not None:
            self.ended(self._session.result(ABANDONED))


def tell_refused(observers: Sequence[CallObserver], agent: str, reason: str) -> None:
    """Tell every observer that a call of ``agent`` was refused (an observer's failure is logged)."""
    for observer in observers:
        _guarded(observer.refused, agent, reason)


def _guarded(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R | None:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - an observer's bug must not end a call
        log.error("call observer failed", observer=getattr(fn, "__qualname__", repr(fn)),
                  error=f"{type(exc).__name__}: {exc}")
        return None


# --- what both metrics and traces call things ----------------------------------------------

def call_outcome(ended_because: str, drain_reason: str = DRAIN_REASON) -> str:
    """A call's end as one of a few stable label values (``ended_because`` is free text)."""
    reason = ended_because.strip()
    if reason == "caller hung up":
        return "caller_hung_up"
    if reason == "goodbye":
        return "agent_hung_up"
    if reason == "end of input":
        return "end_of_input"
    if reason == drain_reason:
        return "drained"
    for prefix, outcome in (("unavailable", "unavailable"), ("failed", "failed"), ("cut off", "cut_off")):
        if reason.startswith(prefix):
            return outcome
    return "other"


def turn_outcome(turn: TurnTimeline) -> str:
    """The turn's outcome; ``unfinished`` for one the call ended under."""
    return "unfinished" if turn.outcome == "pending" else turn.outcome


STAGE_NAMES = ("vad", "stt", "llm", "tts")


def fallback_stage(entry: str) -> tuple[str, str] | None:
    """``(stage, provider)`` of a timeline fallback entry (``"tts/elevenlabs: timed out"``), or
    None for a note that is not a provider failing over (``"llm: reply cut at …"``)."""
    head, sep, _ = entry.partition(":")
    stage, slash, provider = head.partition("/")
    if not sep or not slash or stage not in STAGE_NAMES or not provider:
        return None
    return stage, provider


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a turn as the timeline marks it."""

    name: str
    start: str
    """The mark it starts at."""
    first: str | None
    """The mark of its first output (its time to first byte is ``first - start``)."""
    ends: tuple[str, ...]
    """Marks that end it, the first present wins; without any it ends at ``first``."""
    ttfb_span: str | None = None
    """The :data:`~voiceflow.metrics.timeline.SPANS` entry of its time to first byte."""

    def ttfb(self, turn: TurnTimeline) -> float | None:
        return turn.span(self.ttfb_span) if self.ttfb_span is not None else None

    def interval(self, turn: TurnTimeline) -> tuple[float, float] | None:
        """When it ran, on the session clock; None if it did not run in this turn."""
        marks = turn.marks
        if self.start not in marks:
            return None
        end = next((marks[name] for name in self.ends if name in marks), None)
        if end is None and self.first is not None:
            end = marks.get(self.first)
        if end is None or end < marks[self.start]:
            return None
        return marks[self.start], end


STAGES = (
    Stage("endpointing", "user_speech_end", None, ("endpoint",)),
    Stage("stt", "stt_finalize", "stt_final", (), "stt_ttfb"),
    Stage("llm", "llm_request", "llm_first_token", ("llm_done",), "llm_ttfb"),
    Stage("tts", "tts_request", "tts_first_audio", (), "tts_ttfb"),
    Stage("playout", "first_audio_out", None, ("reply_heard", "interrupted")),
)
"""The stages of a turn, in order; endpointing and playout have no first byte of their own."""
