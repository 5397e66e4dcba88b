"""Running scenarios: one call per scenario, on its own virtual clock, with the agent's providers.

Real models (Whisper, an LLM, a voice) load once for the whole file and serve every scenario, as
they would serve calls on a server. The scripted stand-ins of :mod:`voiceflow.testing` keep their
script in the provider instance (the next line, the next reply), so each scenario gets fresh ones
and never starts where the previous scenario's script stopped.

Every request the agent makes to its LLM is recorded with its time, for the checks on what the
model was told after a barge-in; providers are watched in place, whichever plugin they come from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import structlog

from voiceflow.audio import write_wav
from voiceflow.clock import current_clock, open_clock
from voiceflow.config.base import ProviderConfig
from voiceflow.config.compose import AgentConfig
from voiceflow.config.errors import ConfigError
from voiceflow.frames import Message
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import LLMProvider, Provider, ProviderKind
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import CallResult, Session
from voiceflow.scenarios.checks import judge
from voiceflow.scenarios.hearing import hearing
from voiceflow.scenarios.line import ScenarioLine
from voiceflow.scenarios.loading import YamlFile, load_scenarios, read_yaml, scenario_agent, with_defaults
from voiceflow.scenarios.model import Scenario, ScenarioFile
from voiceflow.scenarios.results import LLMRequest, Outcome, ScenarioRun
from voiceflow.scenarios.sounds import SoundError, clip_for
from voiceflow.tasks import create_task_group

log = structlog.get_logger("voiceflow.scenarios")

SCRIPTED_MODULES = ("voiceflow.testing.",)
"""Providers from these modules keep a script per instance: each scenario gets its own."""

WALL_LIMIT = 600.0
"""Real seconds one scenario may take before it is stopped (a hung provider, a runaway model)."""

DEFAULT_VOICE, DEFAULT_RATE, DEFAULT_PITCH = "en-us", 160, 50

class ScenarioPool(ProviderPool):
    """A scenario's providers: scripted ones of its own, real ones from the file's shared pool."""

    def __init__(self, shared: ProviderPool) -> None:
        super().__init__(shared.registry)
        self.shared = shared

    async def get(self, kind: ProviderKind, config: ProviderConfig) -> Provider[Any]:
        cls = self.registry.get(kind, config.provider).cls
        if cls.__module__.startswith(SCRIPTED_MODULES):
            return await super().get(kind, config)
        return await self.shared.get(kind, config)

    def instances(self) -> list[Provider[Any]]:
        return super().instances() + self.shared.instances()


_requests: ContextVar[list[LLMRequest] | None] = ContextVar("voiceflow_scenario_requests", default=None)


def _record(messages: Sequence[Message]) -> None:
    sink = _requests.get()
    if sink is not None:
        sink.append(LLMRequest(current_clock().now(), list(messages)))


def watch_llm(provider: LLMProvider[Any]) -> None:
    """Record every request ``provider`` gets while a scenario runs (once per instance)."""
    if getattr(provider, "_scenario_watched", False):
        return
    stream, with_tools = provider.stream, provider.stream_with_tools
    nested = [False]  # the default stream_with_tools calls stream: record the request once

    def watched_stream(messages: Sequence[Message]) -> Any:
        if not nested[0]:
            _record(messages)
        return stream(messages)

    def watched_tools(messages: Sequence[Message], tools: Any) -> Any:
        _record(messages)
        nested[0] = True
        try:
            return with_tools(messages, tools)
        finally:
            nested[0] = False

    setattr(provider, "stream", watched_stream)  # noqa: B010 - on the instance, not the class
    setattr(provider, "stream_with_tools", watched_tools)  # noqa: B010
    setattr(provider, "_scenario_watched", True)  # noqa: B010


async def run_scenario(
    agent: AgentConfig, scenario: Scenario, shared: ProviderPool, registry: PluginRegistry
) -> ScenarioRun:
    """Run one scenario's call to its end."""
    from voiceflow_file import FileCall, FileTransportConfig  # the built-in transport's playout

    run = ScenarioRun(scenario, budget=agent.latency_budget if scenario.check_budgets else None)
    started = time.perf_counter()
    try:
        clips = [
            clip_for(event, voice=scenario.voice or DEFAULT_VOICE, rate=scenario.rate or DEFAULT_RATE,
                     pitch=scenario.pitch if scenario.pitch is not None else DEFAULT_PITCH, seed=index)
            for index, event in enumerate(scenario.caller)
        ]
    except SoundError as exc:
        run.error = str(exc)
        return run
    pool = ScenarioPool(shared)
    run.problems = await prepare(agent, pool)
    for provider in pool.instances():
        if isinstance(provider, LLMProvider):
            watch_llm(provider)
    playout = FileCall(FileTransportConfig(start="immediately", lead_in=0), b"")
    line = run.line = ScenarioLine(scenario, clips, playout, greets=agent.prompt.greeting is not None)
    token = _requests.set(run.requests)
    try:
        with hearing(line.words), anyio.move_on_after(WALL_LIMIT) as guard:
            run.result = await _call(agent, pool, line, scenario.time_limit)
        if guard.cancelled_caught:
            run.error = f"stopped after {WALL_LIMIT:g} s of real time"
    finally:
        _requests.reset(token)
        line.close()
        await pool.aclose()  # only the scenario's own (scripted) providers
    run.wall_seconds = time.perf_counter() - started
    return run


async def _call(agent: AgentConfig, pool: ProviderPool, line: ScenarioLine, limit: float) -> CallResult:
    async with open_clock("virtual") as clock:
        session = Session(agent, pool, line, clock)
        async with create_task_group() as tg:

            async def time_limit() -> None:
                await clock.sleep(limit)
                session.request_hang_up("scenario time limit")

            tg.start_soon(time_limit)
            result = await session.run()
            tg.cancel_scope.cancel()
    return result


@dataclass
class Suite:
    """A scenario file with the agent it tests."""

    agent: YamlFile
    file: YamlFile
    model: ScenarioFile
    registry: PluginRegistry

    def scenarios(self, only: Sequence[str] = ()) -> list[tuple[int, Scenario]]:
        chosen = [(i, with_defaults(self.model, s)) for i, s in enumerate(self.model.scenarios)]
        if only:
            chosen = [(i, s) for i, s in chosen if any(word.lower() in s.name.lower() for word in only)]
        return chosen

    def agent_for(self, index: int) -> AgentConfig:
        return scenario_agent(self.agent, self.file, index, self.registry)


def load_suite(agent_path: str | Path, scenarios_path: str | Path, registry: PluginRegistry) -> Suite:
    """Both files read and the scenario file validated (each scenario's agent is validated when it
    runs, so one bad override costs one scenario, not the file)."""
    agent = read_yaml(agent_path)
    model, file = load_scenarios(scenarios_path, registry)
    return Suite(agent, file, model, registry)


async def run_suite(
    suite: Suite,
    *,
    only: Sequence[str] = (),
    recordings: Path | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the suite's scenarios one after another; ``on_outcome`` hears each as it finishes."""
    shared = ProviderPool(suite.registry)
    outcomes: list[Outcome] = []
    try:
        for index, scenario in suite.scenarios(only):
            try:
                agent = suite.agent_for(index)
            except ConfigError as exc:
                run = ScenarioRun(scenario, error=f"the scenario's agent is not valid:\n{exc}")
            else:
                run = await run_scenario(agent, scenario, shared, suite.registry)
            outcome = judge(run)
            if recordings is not None and run.line is not None:
                save_recording(run, recordings)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        await shared.aclose()
    return outcomes


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:80] or "scenario"


def save_recording(run: ScenarioRun, folder: Path) -> None:
    """The call as a stereo WAV (caller left, agent right) and its timeline, named after the scenario."""
    assert run.line is not None
    folder.mkdir(parents=True, exist_ok=True)
    caller, agent = run.line.tracks()
    write_wav(folder / f"{slug(run.scenario.name)}.wav", np.stack([caller, agent], axis=1).tobytes(), channels=2)
    if run.result is not None:
        run.result.timeline.write(folder / f"{slug(run.scenario.name)}.timeline.json")


def scenario_registry(plugins: Sequence[object] = ()) -> PluginRegistry:
    """The installed plugins plus what scenarios may use besides: the scripted and faulty
    stand-ins of :mod:`voiceflow.testing` and the caller-script recogniser."""
    from voiceflow.scenarios import hearing
    from voiceflow.testing import fakes, faults

    return PluginRegistry(plugins=[fakes, faults, hearing, *plugins])
