"""The serving process's ASGI app: health, readiness and every agent's transport under
``/agents/<name>``, each behind the access check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from voiceflow.serving.access import guarded
from voiceflow.serving.api import ASGIApp, ASGIReceive, ASGIScope, ASGISend, ServedTransport
from voiceflow.serving.host import AgentHost, ServerState

AGENTS_PREFIX = "/agents"


@dataclass(frozen=True)
class ServedAgent:
    host: AgentHost
    transport: ServedTransport[Any]

    @property
    def path(self) -> str:
        return f"{AGENTS_PREFIX}/{self.host.agent_name}"


def build_app(agents: list[ServedAgent], state: ServerState, metrics: ASGIApp | None = None) -> Starlette:
    """``metrics``: the Prometheus scrape app, served at ``/metrics`` behind the access token like
    the agents (it tells call volumes and provider health); None: ``/metrics`` says how to get it."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"alive": True})

    async def readyz(request: Request) -> JSONResponse:
        body = {
            "ready": state.ready,
            "draining": state.draining,
            "loading": sorted(state.loading),
            "loop_lag_ms": round(state.lag.recent() * 1000, 1),
            "audio_lag_ms": round(state.audio_lag.recent() * 1000, 1),
            "calls": state.calls,
            "learned_limit": state.ceiling.limit,
            "agents": {
                agent.host.agent_name: {
                    "calls": agent.host.held, "max_sessions": agent.host.limits.max_sessions,
                }
                for agent in agents
            },
        }
        return JSONResponse(body, status_code=200 if state.ready else 503)

    async def no_metrics(request: Request) -> JSONResponse:
        return JSONResponse({"error": "metrics_not_installed",
                             "message": "install the metrics extra: pip install 'voiceflow[metrics]'"}, 501)

    scrape = _Endpoint(guarded(metrics, state, ())) if metrics is not None else no_metrics
    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", scrape)]
    for agent in agents:
        app = guarded(agent.transport.app(agent.host), state, agent.transport.open_paths())
        routes.append(Mount(agent.path, app=app))
    return Starlette(routes=routes)


class _Endpoint:
    """An ASGI app as a route's endpoint (Starlette takes a bare function for a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        await self._app(scope, receive, send)
