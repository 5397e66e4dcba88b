"""Circuit breakers: a provider that keeps failing is skipped by every call for a while.

Without one, each new reply pays a dead primary's full ``first_byte`` timeout before the chain
falls back; with a hundred calls in a process that is a hundred callers waiting four seconds for
the same answer. After ``circuit.failures`` consecutive failures the circuit opens and chains
skip the provider (unless it is the last one they have: something beats nothing); after
``circuit.reset_after`` seconds one request is let through as a probe: success closes the circuit,
failure opens it again. A probe that never reports (the call that made it hung up, or a barge-in
cancelled it) is presumed lost after another ``reset_after``, and the next request probes instead:
a lost verdict must not keep a provider skipped for the life of the process.

The LLM and TTS chains (:mod:`voiceflow.runtime.chain`) consult them per request, the STT
recogniser (:mod:`voiceflow.runtime.recognizer`) per stream it opens.

Breakers belong to the provider instances of a process (the pool's), so every session shares
them; time is the event loop's (real) time, since sessions run on clocks of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import anyio
import structlog

from voiceflow.config.base import CircuitBreaker as CircuitSettings

log = structlog.get_logger("voiceflow.breaker")


class CircuitState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class Breaker:
    provider: str
    settings: CircuitSettings
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    _probing: bool = False
    _probe_started: float = 0.0

    def allows(self) -> bool:
        """Whether a request may go to the provider now (one probe at a time when half-open)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if anyio.current_time() - self.opened_at < self.settings.reset_after:
                return False
            self.state = CircuitState.HALF_OPEN
            log.info("circuit half-open: probing the provider", provider=self.provider)
        now = anyio.current_time()
        if self._probing:
            if now - self._probe_started < self.settings.reset_after:
                return False
            log.info("circuit probe never reported: probing again", provider=self.provider)
        self._probing, self._probe_started = True, now
        return True

    def succeeded(self) -> None:
        if self.state is not CircuitState.CLOSED:
            log.info("circuit closed: the provider answers again", provider=self.provider)
        self.state, self.failures, self._probing = CircuitState.CLOSED, 0, False

    def failed(self) -> None:
        self.failures += 1
        self._probing = False
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.settings.failures:
            if self.state is not CircuitState.OPEN:
                log.warning("circuit open: skipping the provider", provider=self.provider,
                            failures=self.failures, seconds=self.settings.reset_after)
            self.state, self.opened_at = CircuitState.OPEN, anyio.current_time()

    def describe(self) -> str:
        return f"skipped: circuit open after {self.failures} failures (probe in {self.settings.reset_after:g} s)"
