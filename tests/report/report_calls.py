"""Real calls for the report tests: scripted providers on the file transport and the virtual
clock, with every event a waterfall draws (a fallback, a tool call, a barge-in, an ignored overlap,
a budget miss), written as the timeline JSON `voiceflow run --timeline` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness import Cue, fake_agent, fake_registry, run_call
from voiceflow.clock import current_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.config.loader import parse_agent
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing import fakes
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.tools import Tool, ToolCallContext, ToolResult


class Weather:
    """A plugin with one Python tool that takes 0.3 s."""

    async def lookup(self, arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
        await current_clock().sleep(0.3)
        return ToolResult({"city": arguments.get("city"), "weather": "sunny"})

    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(Tool("demo.lookup", "The weather in a city.", self.lookup,
                      {"type": "object", "properties": {"city": {"type": "string"}}}))


EVENTFUL_AGENT: dict[str, Any] = {
    "name": "report-agent",
    "prompt": {"system": "You help.", "greeting": {"text": "Hello there."}},
    "transport": {"provider": "file"},
    "vad": [{"provider": "energy"}],
    # The second line ends on "to": the transcript rules wait 1.2 s for more, over the budget.
    "stt": [{"provider": "scripted-stt", "lines": ["what is the weather in oslo", "I would like to go to", "thanks"]}],
    "llm": [
        {"provider": "scripted-llm", "fail": True},
        {"provider": "scripted-llm", "replies": [
            'Let me look. [[call demo_lookup {"city": "Oslo"}]]',
            "It is sunny in Oslo today, with a light breeze from the sea and not a cloud in the sky.",
            "Where to?",
            "Bye, have a wonderful day and thanks a lot for calling us today.",
        ]},
    ],
    "tts": [{"provider": "tone"}],
    "tools": [{"function": "demo.lookup"}],
    "latency_budget": {"endpointing_ms": 800, "mouth_to_ear_ms": 1000},
}

EVENTFUL_CALLER = [
    Cue(speech_like(1.0) + silence(0.2)),
    Cue(speech_like(1.0, seed=2), after_agent_audio=2.5),  # cuts into the weather report
    Cue(silence(2.5) + speech_like(0.6, seed=3)),
    Cue(speech_like(0.15, seed=4), after_agent_audio=1.0),  # too short to interrupt the goodbye
    Cue(silence(5.0)),
]


def eventful_agent() -> tuple[AgentConfig, PluginRegistry]:
    registry = PluginRegistry(plugins=[fakes, Weather()])
    return parse_agent(yaml.safe_dump(EVENTFUL_AGENT), "report-agent.yaml", registry), registry


async def eventful_call() -> dict[str, Any]:
    """Greeting; a reply after an LLM fallback and a tool call, cut off by the caller; a reply
    over its endpointing and mouth-to-ear budgets; a goodbye the caller murmurs over."""
    agent, registry = eventful_agent()
    result, _, _ = await run_call(agent, registry, EVENTFUL_CALLER)
    return result.timeline.as_dict()


async def plain_call() -> dict[str, Any]:
    """A greeting and one answered question."""
    registry = fake_registry()
    result, _, _ = await run_call(fake_agent(registry), registry, silence(0.5) + speech_like(1.0) + silence(2.0))
    return result.timeline.as_dict()


def write(timeline: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(timeline, indent=2) + "\n", encoding="utf-8")
    return path
