"""Serving agents inside a test: the real ``voiceflow serve`` stack (uvicorn on 127.0.0.1, the
served transports, admission, drain) on the test's own event loop, on a free port.

    async with served_agents([agent], registry) as server:
        report = await WsCaller(server.ws_url(agent.name), cues).run()
        await server.drain()          # optional: what SIGTERM does

The test shares the server's provider pool (``server.pool``), so it can look at what a scripted
provider was asked.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from voiceflow.config.compose import AgentConfig
from voiceflow.metrics.calls import CallObserver
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.session import CallResult
from voiceflow.serving.server import ServeControl, ServeOptions, serve
from voiceflow.tasks import create_task_group


@dataclass
class Served:
    base_url: str
    pool: ProviderPool
    control: ServeControl
    results: list[CallResult] = field(default_factory=list)
    finished: anyio.Event = field(default_factory=anyio.Event)

    def ws_url(self, agent: str, path: str = "/ws") -> str:
        return "ws" + self.base_url.removeprefix("http") + f"/agents/{agent}{path}"

    async def get(self, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        """GET ``path`` (JSON), from a worker thread so the server keeps running."""
        return await anyio.to_thread.run_sync(http_get, self.base_url + path, token)

    async def drain(self) -> None:
        """What SIGTERM does; returns once every call has ended and the server has stopped."""
        self.control.drain()
        await self.finished.wait()


def http_get(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")


@asynccontextmanager
async def served_agents(
    agents: list[AgentConfig], registry: PluginRegistry, *, token: str | None = None,
    observers: Sequence[CallObserver] = (), collect_every: float | None = ServeOptions.collect_every,
) -> AsyncIterator[Served]:
    """Serve ``agents`` until the block ends (then drain them, as SIGTERM would). ``observers``
    hear of every call (e.g. a tracer with an in-memory exporter); ``collect_every`` is
    :attr:`ServeOptions.collect_every <voiceflow.serving.server.ServeOptions.collect_every>`."""
    pool = ProviderPool(registry)
    control = ServeControl()
    listening = anyio.Event()
    holder: list[Served] = []

    def on_listening(base: str, _: object) -> None:
        holder.append(Served(base, pool, control))
        listening.set()

    async def run() -> None:
        try:
            # Not settle_gc: in a test process, freezing the collector would outlive the test.
            await serve(agents, registry, ServeOptions(port=0, token=token, settle_gc=False,
                                                              collect_every=collect_every), control,
                        on_listening=on_listening, on_call_done=lambda r: holder[0].results.append(r), pool=pool, observers=observers)
        finally:
            if holder:
                holder[0].finished.set()

    try:
        async with create_task_group() as tg:
            tg.start_soon(run)
            await listening.wait()
            server = holder[0]
            while (await server.get("/readyz"))[0] != 200 and not control.reason:
                await anyio.sleep(0.02)
            yield server
            control.drain()
    finally:
        await pool.aclose()
