"""Deadlines around provider calls: no call into a plugin may wait forever.

Every await on a provider (``prepare``, opening an STT stream, ``send``, ``finalize``, closing)
goes through :func:`within`, so a hung socket or a model that never loads becomes a
:class:`~voiceflow.providers.ProviderTimeout` that a chain can fall back from, never a call that
hangs. Streams (LLM tokens, TTS audio) are timed item by item by :mod:`voiceflow.runtime.chain`.

The wait is marked busy on the session clock: the provider is working where the clock cannot see
it, so a virtual clock must not jump ahead while the deadline runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from voiceflow.clock import current_clock
from voiceflow.providers import ProviderTimeout

T = TypeVar("T")


async def within(seconds: float, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``, or raise :class:`ProviderTimeout` naming ``what`` after ``seconds``.

    A ``TimeoutError`` raised by the provider itself (a socket timeout) passes through as the
    provider's own error: only our deadline is reported as ours.
    """
    with current_clock().busy(), anyio.move_on_after(seconds) as scope:
        return await call()
    assert scope.cancelled_caught
    raise ProviderTimeout(f"{what}: no answer within {seconds:g} s")


async def close_within(seconds: float, close: Callable[[], Awaitable[object]]) -> str | None:
    """Release a provider resource, shielded from the caller's cancellation but never for longer
    than ``seconds``; returns what went wrong (for the log) instead of raising, because a failed
    close must not turn a finished call into a failed one."""
    with anyio.CancelScope(shield=True):
        try:
            await within(seconds, "close", close)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return f"{type(exc).__name__}: {exc}"
    return None
