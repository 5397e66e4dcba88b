"""Provider instances shared by every session of a process.

A loaded Whisper or Qwen is hundreds of megabytes; sessions must share it. The pool keeps one
instance per (kind, exact config), prepares it once (concurrent first users wait for the same
load), and builds each session's chains from those instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import structlog

from voiceflow.config.base import ProviderConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import Provider, ProviderKind

log = structlog.get_logger("voiceflow.pool")


class NoProviderReady(Exception):
    """No provider of a stage's chain could be prepared."""


class ProviderPool:
    def __init__(self, registry: PluginRegistry) -> None:
        self.registry = registry
        self._instances: dict[tuple[ProviderKind, str], Provider[Any]] = {}
        self._failures: dict[tuple[ProviderKind, str], BaseException] = {}
        self._locks: dict[tuple[ProviderKind, str], anyio.Lock] = {}

    async def get(self, kind: ProviderKind, config: ProviderConfig) -> Provider[Any]:
        key = (kind, config.model_dump_json())
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if key in self._failures:
                raise self._failures[key]
            if key not in self._instances:
                provider = self.registry.get(kind, config.provider).cls(config)
                try:
                    await provider.prepare()
                except Exception as exc:
                    self._failures[key] = exc
                    raise
                self._instances[key] = provider
            return self._instances[key]

    async def chain(self, kind: ProviderKind, configs: Sequence[ProviderConfig]) -> list[Provider[Any]]:
        """The prepared providers of a chain, skipping (and logging) any that cannot load."""
        ready: list[Provider[Any]] = []
        errors: list[str] = []
        for config in configs:
            try:
                ready.append(await self.get(kind, config))
            except Exception as exc:  # noqa: BLE001 - the next provider in the chain may work
                errors.append(f"{config.provider}: {type(exc).__name__}: {exc}")
                log.warning("provider unavailable, using the rest of its chain",
                            kind=kind.value, provider=config.provider, error=str(exc))
        if not ready:
            raise NoProviderReady(f"no {kind.value} provider could be prepared: " + "; ".join(errors))
        return ready

    async def aclose(self) -> None:
        for provider in self._instances.values():
            with anyio.CancelScope(shield=True):
                await provider.aclose()
        self._instances.clear()
