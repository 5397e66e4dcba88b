"""What ``voiceflow serve`` does once its options are parsed: signals → drain, the banner, the
exit status. Kept out of :mod:`voiceflow.cli` so the command line only parses and reports."""

from __future__ import annotations

import signal
import sys

import anyio

from voiceflow.config.compose import AgentConfig
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.serving.app import ServedAgent
from voiceflow.serving.server import ServeControl, ServeOptions, serve


def run_until_drained(agents: list[AgentConfig], registry: PluginRegistry, options: ServeOptions) -> int:
    """Serve until SIGTERM or Ctrl-C has drained every call; returns the exit status: 0 after a
    drain, 128 + the signal when a second signal stopped it at once. Raises
    :class:`~voiceflow.serving.server.ServingError` if the agents cannot be served."""
    return anyio.run(_serve_with_signals, agents, registry, options)


async def _serve_with_signals(agents: list[AgentConfig], registry: PluginRegistry, options: ServeOptions) -> int:
    control = ServeControl()
    forced: int | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal forced
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if control.reason:
                        forced = int(signum)
                        _say(f"{name}: ending every call now")
                        control.stop_now(f"stopped by {name}")
                        return
                    _say(f"{name}: draining: no new calls; calls in progress finish (again to stop at once)")
                    control.drain()

        tg.start_soon(watch)
        await serve(agents, registry, options, control, on_listening=_banner)
        tg.cancel_scope.cancel()
    return 0 if forced is None else 128 + forced


def _banner(base: str, agents: list[tuple[ServedAgent, list[str]]]) -> None:
    lines = [f"voiceflow serve: listening on {base} (health: {base}/healthz, readiness: {base}/readyz)"]
    for agent, urls in agents:
        lines += [f"  {agent.host.agent_name} ({agent.transport.name}): {url}" for url in urls]
    print("\n".join(lines), flush=True)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
