"""What a scenario's run leaves behind: its call, its caller's line, its LLM requests, its verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from voiceflow.frames import Message
from voiceflow.metrics.budget import LatencyBudget
from voiceflow.runtime.session import CallResult
from voiceflow.scenarios.line import ScenarioLine
from voiceflow.scenarios.model import Scenario

Status = Literal["passed", "failed", "xfailed", "xpassed", "error"]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    t: float
    messages: list[Message]


@dataclass
class ScenarioRun:
    """What happened in one scenario's call, for the checks and the report."""

    scenario: Scenario
    line: ScenarioLine | None = None
    result: CallResult | None = None
    requests: list[LLMRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Providers that could not be prepared (the chain may have fallen back)."""
    error: str | None = None
    """Why the scenario could not run at all (an invalid agent override, a missing program)."""
    wall_seconds: float = 0.0
    budget: LatencyBudget | None = None
    """The agent file's latency budgets, checked on every turn of the call (unless the scenario
    says ``check_budgets: false``)."""


@dataclass
class Outcome:
    run: ScenarioRun
    failures: list[str]
    status: Status

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "xfailed")
