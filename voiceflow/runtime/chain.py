"""Fallback chains: every stage is a list of providers, tried in order, each attempt timed.

The chain, not the provider, owns timing: it stamps the request and the first item (TTFB) for the
timeline, enforces the per-attempt ``first_byte`` and ``idle`` timeouts, and moves to the next
provider when one fails *before producing anything*. Once output has reached the caller, switching
providers would repeat or garble what they heard, so a failure mid-stream ends the stream with
:class:`StageFailed` and the turn manager decides what to say.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import anyio
import structlog

from voiceflow.clock import Clock
from voiceflow.providers import Provider

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
    """Every provider in the chain failed (or one failed after its output had started)."""

    def __init__(self, stage: str, attempts: list[AttemptRecord]) -> None:
        self.stage = stage
        self.attempts = attempts
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

    async def stream(self, start: Callable[[P], AsyncIterator[T]]) -> AsyncGenerator[T, None]:
        """Items from the first provider that produces any; see the module docstring."""
        attempts: list[AttemptRecord] = []
        for provider in self.providers:
            timeouts = provider.config.timeouts
            requested = self.clock.now()
            iterator: AsyncIterator[T] | None = None
            try:
                iterator = start(provider)  # a provider may fail already when asked to start
                first = await self._next(iterator, timeouts.first_byte)
            except StopAsyncIteration:
                self._record(attempts, provider, requested, self.clock.now(), None)
                return
            except Exception as exc:  # noqa: BLE001 - any provider failure means "try the next"
                if iterator is not None:
                    await _close(iterator)
                self._record(attempts, provider, requested, None, _describe(exc, timeouts.first_byte))
                log.warning("provider failed, falling back", stage=self.stage,
                            provider=provider.name, error=attempts[-1].error)
                continue
            self._record(attempts, provider, requested, self.clock.now(), None)
            try:
                yield first
                while True:
                    try:
                        item = await self._next(iterator, timeouts.idle)
                    except StopAsyncIteration:
                        return
                    except Exception as exc:  # noqa: BLE001
                        self._record(attempts, provider, requested, None,
                                     "mid-stream: " + _describe(exc, timeouts.idle))
                        raise StageFailed(self.stage, attempts) from exc
                    yield item
            finally:
                await _close(iterator)
        raise StageFailed(self.stage, attempts)

    async def _next(self, iterator: AsyncIterator[T], timeout: float) -> T:
        with self.clock.busy(), anyio.fail_after(timeout):
            return await anext(iterator)

    def _record(
        self, attempts: list[AttemptRecord], provider: P, requested: float,
        first_item: float | None, error: str | None,
    ) -> None:
        record = AttemptRecord(self.stage, provider.name, requested, first_item, error)
        attempts.append(record)
        for observer in self.observers:
            observer(record)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no output within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()
