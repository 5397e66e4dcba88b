"""Fallback chains: every stage is a list of providers, tried in order, each attempt timed.

The chain, not the provider, owns timing: it stamps the request and the first item (TTFB) for the
timeline, enforces the per-attempt ``first_byte`` and ``idle`` timeouts, and moves to the next
provider when one fails *before producing anything*: raising, timing out, producing nothing at all
(``nonempty``), or producing an item its stage cannot use (``check``: a TTS chunk of odd length,
an LLM delta that is not text). A failure after output has started ends the stream with
:class:`StageFailed` naming the provider that served it (``served_by``); the caller decides
whether the rest can move on (TTS resumes the unspoken text on the next provider, see
:mod:`voiceflow.runtime.reply`) or the turn manager must apologise.

Error texts pass through the agent's redactor before they reach the timeline or the log.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog

from voiceflow.clock import Clock
from voiceflow.providers import Provider
from voiceflow.redaction import redact
from voiceflow.runtime.breaker import Breaker
from voiceflow.runtime.deadline import close_within

T = TypeVar("T")
P = TypeVar("P", bound=Provider[Any])

log = structlog.get_logger("voiceflow.chain")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try of one provider: for the timeline and for diagnosing fallbacks."""

    stage: str
    provider: str
    requested: float
    first_item: float | None
    error: str | None


class StageFailed(Exception):
    """Every provider in the chain failed (or one failed after its output had started:
    ``served_by`` is then its index in the chain)."""

    def __init__(self, stage: str, attempts: list[AttemptRecord], served_by: int | None = None) -> None:
        self.stage = stage
        self.attempts = attempts
        self.served_by = served_by
        reasons = "; ".join(f"{a.provider}: {a.error}" for a in attempts if a.error)
        super().__init__(f"{stage} failed ({reasons})")


class AttemptObserver(Protocol):
    def __call__(self, record: AttemptRecord) -> None: ...


@dataclass
class Chain(Generic[P]):
    """A stage's providers in fallback order."""

    stage: str
    providers: Sequence[P]
    clock: Clock
    observers: list[AttemptObserver] = field(default_factory=list)
    breaker: Callable[[Provider[Any]], Breaker] | None = None
    """The process-wide circuit breaker of each provider (:mod:`voiceflow.runtime.breaker`)."""

    async def stream(
        self,
        start: Callable[[P], AsyncIterator[T]],
        *,
        first: int = 0,
        check: Callable[[T], None] | None = None,
        nonempty: bool = False,
        substantive: Callable[[T], bool] | None = None,
        served: Callable[[int], None] | None = None,
    ) -> AsyncGenerator[T, None]:
        """Items from the first provider (from index ``first``) that produces any; see the module
        docstring. ``check`` raises on an unusable item; ``nonempty`` makes an empty stream a
        failure rather than an answer; ``substantive`` tells items that carry something from
        empty ones, which are dropped and do not count as progress (a provider spinning on empty
        chunks meets its deadline like a silent one); ``served`` hears the index of the provider
        that answered (so the next request can start there instead of waiting out a broken one
        again)."""
        attempts: list[AttemptRecord] = []
        for index in range(first, len(self.providers)):
            provider = self.providers[index]
            timeouts = provider.config.timeouts
            requested = self.clock.now()
            breaker = self.breaker(provider) if self.breaker is not None else None
            if breaker is not None and index < len(self.providers) - 1 and not breaker.allows():
                self._record(attempts, provider, requested, None, breaker.describe())
                continue  # (the last provider is always tried: something beats nothing)
            iterator: AsyncIterator[T] | None = None
            with StallWatch() as stall:  # the attempt's item deadlines; its timer ends with it
                try:
                    iterator = start(provider)  # a provider may fail already when asked to start
                    try:
                        item = await self._next(iterator, stall, timeouts.first_byte, check, substantive)
                    except StopAsyncIteration:
                        if not nonempty:
                            if breaker is not None:
                                breaker.succeeded()
                            self._record(attempts, provider, requested, self.clock.now(), None)
                            return
                        raise EmptyStream("produced nothing") from None
                except Exception as exc:  # noqa: BLE001 - any provider failure means "try the next"
                    if iterator is not None:
                        await _close(iterator)
                    if breaker is not None:
                        breaker.failed()
                    self._record(attempts, provider, requested, None, _describe(exc, timeouts.first_byte))
                    log.warning("provider failed, falling back", stage=self.stage,
                                provider=provider.name, error=attempts[-1].error)
                    continue
                if breaker is not None:
                    breaker.succeeded()
                self._record(attempts, provider, requested, self.clock.now(), None)
                if served is not None:
                    served(index)
                try:
                    while True:
                        yield item
                        try:
                            item = await self._next(iterator, stall, timeouts.idle, check, substantive)
                        except StopAsyncIteration:
                            return
                        except Exception as exc:  # noqa: BLE001
                            if breaker is not None:
                                breaker.failed()
                            self._record(attempts, provider, requested, None,
                                         "mid-stream: " + _describe(exc, timeouts.idle))
                            raise StageFailed(self.stage, attempts, served_by=index) from exc
                finally:
                    await _close(iterator)
        raise StageFailed(self.stage, attempts)

    async def _next(
        self,
        iterator: AsyncIterator[T],
        stall: StallWatch,
        timeout: float,
        check: Callable[[T], None] | None,
        substantive: Callable[[T], bool] | None,
    ) -> T:
        # No cancel scope per item: this runs for every streamed token and audio chunk of every
        # call, and entering and leaving one cost more than the rest of the item's way through
        # the chain. The attempt's StallWatch keeps the deadline with one loop timer; when a wait
        # outlasts it, the watch cancels this task, and the cancellation becomes TimeoutError here.
        with self.clock.busy():
            stall.waiting(timeout)
            try:
                while True:
                    item = await anext(iterator)
                    if check is not None:
                        check(item)
                    if substantive is None or substantive(item):
                        return item
            except asyncio.CancelledError:
                if stall.expired():
                    raise TimeoutError from None
                raise
            finally:
                stall.done()

    def _record(
        self, attempts: list[AttemptRecord], provider: P, requested: float,
        first_item: float | None, error: str | None,
    ) -> None:
        record = AttemptRecord(self.stage, provider.name, requested, first_item, error)
        attempts.append(record)
        for observer in self.observers:
            observer(record)


class StallWatch:
    """The per-item deadline of one provider attempt, kept by one event-loop timer.

    A deadline on every item's cancel scope (``CancelScope(deadline=...)``) schedules a loop
    timer when the scope is entered and cancels it when the item arrives, and the scope itself
    costs as much again: for a voice's 20 ms chunks and an LLM's tokens that is most of the
    chain's work per item, for every call, where a stall happens a few times a day. Here the
    timer is armed once and, when it fires, either cancels the wait still in progress (it began
    ``timeout`` ago) or moves itself to the current wait's deadline: it fires about once per
    ``timeout`` of streaming, not once per item. The deadline is as exact as a scope's own: each
    wait's ``timeout`` counts from its start.

    The wait is cancelled the way ``asyncio.timeout`` does it: the waiting task is cancelled,
    and :meth:`expired` withdraws that request (``Task.uncancel``) when the ``CancelledError``
    arrives, so it becomes a ``TimeoutError``, unless something else (a barge-in, the call
    ending) asked for a cancellation too, which then goes on. Voiceflow's calls run on asyncio
    (uvloop where installed); the timer is the loop's public ``call_at``, on the same clock as
    anyio's deadlines."""

    __slots__ = ("_loop", "_handle", "_due", "_since", "_timeout", "_task", "_fired")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = math.inf
        self._since = 0.0
        self._timeout = math.inf
        self._task: asyncio.Task[Any] | None = None
        """The task waiting for an item (None between items, while the consumer has the last one)."""
        self._fired = False
        """This watch cancelled the waiting task, and the cancellation has not arrived yet."""

    def waiting(self, timeout: float) -> None:
        """The current task starts waiting for the next item now; it may wait ``timeout``."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._since = now = self._loop.time()
        self._timeout = timeout
        self._task = asyncio.current_task()
        if now + timeout < self._due:  # the first wait, or a shorter timeout than the armed one
            self._arm(now + timeout)

    def done(self) -> None:
        """The wait is over (an item, the end, an error, or the deadline)."""
        if self._fired and self._task is not None:
            # The deadline's cancellation never arrived as such (the provider caught it and
            # produced something anyway): withdraw it, or the task would stay marked cancelling.
            self._fired = False
            self._task.uncancel()
        self._task = None

    def expired(self) -> bool:
        """A ``CancelledError`` reached the waiting task: True if it was this watch's deadline
        alone (the request is withdrawn: raise ``TimeoutError``); False if it is someone
        else's cancellation (let it through)."""
        if not self._fired:
            return False
        self._fired = False
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        return task.cancelling() == 0

    def __enter__(self) -> StallWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """The attempt is over: no timer outlives it."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._due = math.inf
        self._task = None

    def _arm(self, due: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._due = due
        self._handle = self._loop.call_at(due, self._check)

    def _check(self) -> None:
        self._handle, self._due = None, math.inf
        task = self._task
        if task is None or self._fired:
            return  # between items: the next wait arms it again
        due = self._since + self._timeout
        assert self._loop is not None
        if self._loop.time() >= due:
            self._fired = True
            task.cancel()
        else:
            self._arm(due)


class EmptyStream(Exception):
    """A provider ended its stream without producing anything where something was needed."""


class BadItem(Exception):
    """A provider produced an item its stage cannot use (raised by a chain's ``check``)."""


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no output within {timeout:g} s"
    if isinstance(exc, EmptyStream | BadItem):
        return str(exc)
    return redact(f"{type(exc).__name__}: {exc}")


CLOSE_SECONDS = 2.0
"""How long a provider's stream may take to clean up after we stopped reading it."""


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        problem = await close_within(CLOSE_SECONDS, aclose)
        if problem is not None:
            log.warning("provider stream did not close cleanly", error=problem)
