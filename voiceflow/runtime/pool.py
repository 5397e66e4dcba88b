"""Provider instances shared by every session of a process.

A loaded Whisper or Qwen is hundreds of megabytes; sessions must share it. The pool keeps one
instance per (kind, exact config), prepares it once (concurrent first users wait for the same
load), and builds each session's chains from those instances.

"Exact config" includes secrets: two entries that differ only in their API key are two clients
(a backup key must really be used, and a second agent must never borrow the first one's key).

``prepare()`` runs under the entry's ``timeouts.prepare`` deadline. A provider that failed to
prepare is not refused for the life of the process: it is tried again once its back-off has passed
(doubling from ``backoff`` up to ``max_backoff``), so a model server that was down at boot is used
as soon as it is back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, SecretStr

from voiceflow.config.base import ProviderConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import Provider, ProviderError, ProviderKind, ProviderUnavailable
from voiceflow.redaction import redact
from voiceflow.runtime.breaker import Breaker
from voiceflow.runtime.deadline import close_within, within

log = structlog.get_logger("voiceflow.pool")


class NoProviderReady(Exception):
    """No provider of a stage's chain could be prepared."""


@dataclass
class _Failure:
    error: str
    retry_at: float
    backoff: float
    told: bool = False
    """Already logged: a provider that stays down is said once, not on every call."""


class ProviderPool:
    def __init__(self, registry: PluginRegistry, *, backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self.registry = registry
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._instances: dict[tuple[ProviderKind, str], Provider[Any]] = {}
        self._failures: dict[tuple[ProviderKind, str], _Failure] = {}
        self._locks: dict[tuple[ProviderKind, str], anyio.Lock] = {}
        self._breakers: dict[int, Breaker] = {}

    async def get(self, kind: ProviderKind, config: ProviderConfig) -> Provider[Any]:
        key = (kind, config_identity(config))
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if key in self._instances:
                return self._instances[key]
            failure = self._failures.get(key)
            now = anyio.current_time()
            if failure is not None and now < failure.retry_at:
                raise ProviderUnavailable(
                    f"{failure.error} (next try in {failure.retry_at - now:.0f} s)"
                )
            provider = self.registry.get(kind, config.provider).cls(config)
            try:
                await within(config.timeouts.prepare, "prepare", provider.prepare)
            except Exception as exc:
                error = redact(str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}")
                backoff = self.backoff if failure is None else min(self.max_backoff, failure.backoff * 2)
                told = failure is not None and failure.told and failure.error == error
                self._failures[key] = _Failure(error, anyio.current_time() + backoff, backoff, told)
                await close_within(config.timeouts.connect, provider.aclose)
                raise
            if self._failures.pop(key, None) is not None:
                log.info("provider ready again", kind=kind.value, provider=config.provider)
            self._instances[key] = provider
            return provider

    async def chain(self, kind: ProviderKind, configs: Sequence[ProviderConfig]) -> list[Provider[Any]]:
        """The prepared providers of a chain, skipping (and logging) any that cannot load."""
        ready: list[Provider[Any]] = []
        errors: list[str] = []
        for config in configs:
            try:
                ready.append(await self.get(kind, config))
            except Exception as exc:  # noqa: BLE001 - the next provider in the chain may work
                errors.append(redact(f"{config.provider}: {type(exc).__name__}: {exc}"))
                if self.first_telling(kind, config):
                    log.warning("provider unavailable, using the rest of its chain",
                                kind=kind.value, provider=config.provider, error=errors[-1])
        if not ready:
            raise NoProviderReady(f"no {kind.value} provider could be prepared: " + "; ".join(errors))
        return ready

    def first_telling(self, kind: ProviderKind, config: ProviderConfig) -> bool:
        """Whether this entry's failure has yet to be logged (then it counts as logged now)."""
        failure = self._failures.get((kind, config_identity(config)))
        if failure is None:
            return True
        first, failure.told = not failure.told, True
        return first

    def breaker(self, provider: Provider[Any]) -> Breaker:
        """The circuit breaker every session shares for this provider instance."""
        found = self._breakers.get(id(provider))
        if found is None:
            found = self._breakers[id(provider)] = Breaker(provider.name, provider.config.circuit)
        return found

    def instances(self) -> list[Provider[Any]]:
        """The prepared providers (for tests and diagnostics)."""
        return list(self._instances.values())

    async def aclose(self) -> None:
        for provider in self._instances.values():
            problem = await close_within(provider.config.timeouts.connect, provider.aclose)
            if problem is not None:
                log.warning("provider did not close cleanly", provider=provider.name, error=problem)
        self._instances.clear()


def config_identity(config: BaseModel) -> str:
    """A digest of the whole config, secrets included (a dump would mask them as ``**********``,
    making configs that differ only in their key look the same)."""
    text = json.dumps(_reveal(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return {"secret": value.get_secret_value()}
    if isinstance(value, BaseModel):
        return {"model": type(value).__qualname__} | {
            name: _reveal(getattr(value, name)) for name in type(value).model_fields
        }
    if isinstance(value, dict):
        return {str(k): _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value
