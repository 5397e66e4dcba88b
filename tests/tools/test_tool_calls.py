"""Tool calls end to end: whole calls on the file transport, with the scripted LLM calling a
webhook tool on a real HTTP server on loopback, a plugin's Python tool, a slow tool with its
filler line, and a tool that switches the conversation state (and so the endpointing)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import yaml

from harness import Cue, run_call
from voiceflow.clock import current_clock
from voiceflow.config.errors import ConfigError
from voiceflow.config.loader import parse_agent
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing import fakes
from voiceflow.testing.fake_webhook import FakeWebhook, WebhookAnswer
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.tools import Tool, ToolCallContext, ToolFailed, ToolResult

pytestmark = pytest.mark.anyio


class TrackingTools:
    """A plugin registering Python tools, recording how they were called."""

    def __init__(self, *, lookup_seconds: float = 0.0) -> None:
        self.calls: list[tuple[str, dict[str, Any], ToolCallContext]] = []
        self.lookup_seconds = lookup_seconds

    async def lookup(self, arguments: dict[str, Any], call: ToolCallContext) -> ToolResult:
        self.calls.append(("lookup", arguments, call))
        if self.lookup_seconds:
            await current_clock().sleep(self.lookup_seconds)
        return ToolResult({"city": arguments.get("city"), "weather": "sunny"})

    async def broken(self, arguments: dict[str, Any], call: ToolCallContext) -> Any:
        self.calls.append(("broken", arguments, call))
        raise ToolFailed("the weather service is down")

    @hookimpl
    def register_tools(self, register: Any) -> None:
        register(Tool("demo.lookup", "The weather in a city.", self.lookup,
                      {"type": "object", "properties": {"city": {"type": "string"}}}))
        register(Tool("demo.broken", "Always fails.", self.broken))


def agent(registry: PluginRegistry, llm_replies: list[str], stt_lines: list[str], **extra: Any) -> Any:
    data: dict[str, Any] = {
        "name": "tool-agent",
        "prompt": {"system": "You help.", "greeting": {"text": "Hello."}},
        "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}],
        "stt": [{"provider": "scripted-stt", "lines": stt_lines}],
        "llm": [{"provider": "scripted-llm", "replies": llm_replies, "first_token_delay": 0.05}],
        "tts": [{"provider": "tone"}],
    }
    data.update(extra)
    return parse_agent(yaml.safe_dump(data), "tool-agent.yaml", registry)


def llm_of(pool: Any) -> fakes.ScriptedLLM:
    return next(p for p in pool.instances() if isinstance(p, fakes.ScriptedLLM))


ONE_TURN = silence(0.3) + speech_like(1.0) + silence(3.0)


async def test_webhook_tool_posts_the_arguments_and_the_llm_answers_with_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", "s3cret-orders-token")
    registry = PluginRegistry(plugins=[fakes])
    async with FakeWebhook({"/orders": WebhookAnswer(json={"status": "shipped", "eta": "Friday"})}) as hook:
        cfg = agent(
            registry,
            ['Let me check. [[call check_order {"order": "42"}]]', "It ships on Friday."],
            ["where is my order forty two"],
            tools=[{
                "name": "check_order",
                "description": "The status of an order.",
                "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
                "webhook": {"url": hook.url("/orders"), "headers": {"Authorization": "Bearer ${ORDERS_TOKEN}"}},
            }],
        )
        result, _, pool = await run_call(cfg, registry, ONE_TURN, start="immediately", lead_in=0)
    [request] = hook.requests
    assert request.body == {"order": "42"}
    assert request.headers["authorization"] == "Bearer s3cret-orders-token"
    assert request.headers["voiceflow-tool"] == "check_order"
    assert request.headers["voiceflow-call-id"] == result.call_id

    llm = llm_of(pool)
    assert [spec.name for spec in llm.offered_tools[0]] == ["check_order"]
    second = llm.requests[1]
    call_message, result_message = second[-2], second[-1]
    assert call_message.role == "assistant" and call_message.content == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in call_message.tool_calls] == [("check_order", {"order": "42"})]
    assert result_message.role == "tool" and result_message.tool_call_id == call_message.tool_calls[0].id
    assert json.loads(result_message.content) == {"status": "shipped", "eta": "Friday"}

    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.outcome == "completed"
    assert reply.agent_text == "Let me check. It ships on Friday."
    [record] = reply.as_dict()["tools"]
    assert record["tool"] == "check_order" and record["error"] is None and "shipped" in record["result"]
    assert "s3cret-orders-token" not in json.dumps(result.timeline.as_dict())


async def test_plugin_tool_gets_its_arguments_and_the_call_and_failures_reach_the_llm() -> None:
    tools = TrackingTools()
    registry = PluginRegistry(plugins=[fakes, tools])
    cfg = agent(
        registry,
        ['[[call demo_lookup {"city": "Oslo"}]] [[call demo_broken {}]] [[call made_up {}]]', "Sunny in Oslo."],
        ["weather in oslo"],
        tools=[{"function": "demo.lookup"}, {"function": "demo.broken"}],
    )
    result, _, pool = await run_call(cfg, registry, ONE_TURN, start="immediately", lead_in=0)
    assert [(name, args) for name, args, _ in tools.calls] == [("lookup", {"city": "Oslo"}), ("broken", {})]
    assert tools.calls[0][2].call_id == result.call_id and tools.calls[0][2].state is None
    results = [m for m in llm_of(pool).requests[1] if m.role == "tool"]
    assert [json.loads(m.content) for m in results] == [
        {"city": "Oslo", "weather": "sunny"},
        {"error": "the weather service is down"},
        {"error": "there is no tool named 'made_up'"},
    ]
    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.outcome == "completed" and reply.agent_text == "Sunny in Oslo."


async def test_a_slow_tool_gets_its_filler_line_said_while_it_runs() -> None:
    tools = TrackingTools(lookup_seconds=1.0)
    registry = PluginRegistry(plugins=[fakes, tools])
    cfg = agent(
        registry,
        ['Checking. [[call demo_lookup {"city": "Rome"}]]', "Sunny in Rome."],
        ["weather in rome"],
        tools=[{"function": "demo.lookup", "filler": "One moment please.", "filler_after": 0.3}],
    )
    result, _, _ = await run_call(cfg, registry, ONE_TURN, start="immediately", lead_in=0)
    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.agent_text == "Checking. One moment please. Sunny in Rome."
    assert reply.heard_text == reply.agent_text
    [record] = reply.tools
    assert record.ended - record.started >= 1.0


async def test_a_fast_tool_needs_no_filler() -> None:
    tools = TrackingTools()
    registry = PluginRegistry(plugins=[fakes, tools])
    cfg = agent(
        registry,
        ['[[call demo_lookup {"city": "Rome"}]]', "Sunny in Rome."],
        ["weather in rome"],
        tools=[{"function": "demo.lookup", "filler": "One moment please.", "filler_after": 5.0}],
    )
    result, _, _ = await run_call(cfg, registry, ONE_TURN, start="immediately", lead_in=0)
    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.agent_text == "Sunny in Rome."


async def test_a_tool_that_sets_the_state_switches_the_endpointing() -> None:
    """After the tool, a 0.9 s pause no longer ends the caller's turn (spelling: 1.5 s)."""
    async with FakeWebhook({"/spell": WebhookAnswer(json="ok")}) as hook:
        registry = PluginRegistry(plugins=[fakes])
        tool = {"name": "start_spelling", "description": "The caller is about to spell something.",
                "webhook": {"url": hook.url("/spell")}, "sets_state": "spelling"}
        # The words are left out (transcript rules off): this is about the state the tool sets.
        states = {"endpointing": {"transcript_rules": {"enabled": False}},
                  "states": {"spelling": {"endpointing": {"min_silence": 1.5, "max_wait": 4.0}}}}
        caller = [
            Cue(speech_like(1.0) + silence(0.2)),
            Cue(speech_like(1.0, seed=2) + silence(0.9) + speech_like(1.0, seed=3) + silence(4.0),
                after_agent_audio=1.5),
        ]
        with_tool = agent(registry, ["Sure. [[call start_spelling {}]]", "Go ahead.", "Thanks."],
                          ["i will spell my name", "a b c", "d e f"], turn_taking=states, tools=[tool])
        result, _, _ = await run_call(with_tool, registry, caller, start="immediately", lead_in=0)
        without = agent(registry, ["Sure. Go ahead.", "Thanks."],
                        ["i will spell my name", "a b c", "d e f"], turn_taking=states, tools=[tool])
        control, _, _ = await run_call(without, registry, caller, start="immediately", lead_in=0)

    def caller_turns(r: Any) -> list[str]:
        return [t.user_text for t in r.timeline.turns if t.kind == "reply" and t.outcome != "discarded"]

    first = next(t for t in result.timeline.turns if t.kind == "reply")
    assert first.states == ["spelling (tool start_spelling)"]
    assert caller_turns(result) == ["i will spell my name", "a b c d e f"]
    assert caller_turns(control)[:3] == ["i will spell my name", "a b c", "d e f"]


async def test_tools_run_only_once_a_preemptive_reply_is_confirmed() -> None:
    """The caller pauses (a final comes, a reply starts preemptively), then goes on: the held
    reply's tool call must not have run."""
    tools = TrackingTools()
    registry = PluginRegistry(plugins=[fakes, tools])
    cfg = agent(
        registry,
        ['[[call demo_lookup {"city": "Paris"}]]', '[[call demo_lookup {"city": "Paris"}]]', "Sunny."],
        ["book a table", "for two people"],
        tools=[{"function": "demo.lookup"}],
        turn_taking={"endpointing": {"min_silence": 1.5}},
    )
    caller = silence(0.3) + speech_like(1.0) + silence(0.9) + speech_like(1.0, seed=4) + silence(4.0)
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    replies = [t for t in result.timeline.turns if t.kind == "reply"]
    assert [t.outcome for t in replies][0] == "discarded"
    assert len(tools.calls) == 1  # only the confirmed reply's call ran
    assert replies[-1].user_text == "book a table for two people"


async def test_barge_in_during_a_slow_tool_cancels_it_and_keeps_the_context_consistent() -> None:
    tools = TrackingTools(lookup_seconds=30.0)
    registry = PluginRegistry(plugins=[fakes, tools])
    cfg = agent(
        registry,
        ['Let me look that up for you right now. [[call demo_lookup {"city": "Rome"}]]', "Okay."],
        ["weather in rome", "never mind"],
        tools=[{"function": "demo.lookup", "timeout": 60}],
    )
    caller = [Cue(speech_like(1.0) + silence(0.2)), Cue(speech_like(1.0, seed=5) + silence(3.0), after_agent_audio=0.8)]
    result, _, pool = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    replies = [t for t in result.timeline.turns if t.kind == "reply"]
    assert replies[0].tools == []  # cut off before it returned
    last_request = llm_of(pool).requests[-1]
    assert not any(m.role == "tool" or m.tool_calls for m in last_request)
    assert last_request[-1].content == "never mind"


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ([{"name": "x", "description": "d"}], "exactly one of `webhook` or `function`"),
        ([{"name": "x", "webhook": {"url": "http://127.0.0.1/"}}], "needs description"),
        ([{"function": "demo.nope"}], "no plugin registers a tool function named 'demo.nope'"),
        ([{"function": "demo.lookup", "sets_state": "nowhere"}], "'nowhere' is not a state"),
        ([{"function": "demo.lookup"}, {"name": "demo.lookup", "description": "d",
                                        "webhook": {"url": "http://127.0.0.1/"}}], "used twice"),
        ([{"name": "x", "description": "d", "webhook": {"url": "http://127.0.0.1/"},
           "parameters": {"type": "string"}}], "type: object"),
        ([{"name": "x", "description": "d", "webhook": {"url": "ftp://127.0.0.1/"}}], "url"),
    ],
)
def test_bad_tool_declarations_are_refused_with_the_field(tools: list[dict[str, Any]], expected: str) -> None:
    registry = PluginRegistry(plugins=[fakes, TrackingTools()])
    with pytest.raises(ConfigError) as caught:
        agent(registry, ["x"], ["x"], tools=tools)
    assert expected in str(caught.value)
    assert "tools" in str(caught.value)


async def test_a_hanging_webhook_times_out_and_the_llm_is_told() -> None:
    async with FakeWebhook({"/slow": WebhookAnswer(json="late", delay=30.0)}) as hook:
        registry = PluginRegistry(plugins=[fakes])
        cfg = agent(
            registry,
            ["[[call slow {}]]", "Sorry, that service is slow today."],
            ["check it"],
            tools=[{"name": "slow", "description": "Slow.", "webhook": {"url": hook.url("/slow")}, "timeout": 0.5}],
        )
        with anyio.fail_after(30):
            result, _, pool = await run_call(cfg, registry, ONE_TURN, start="immediately", lead_in=0)
    [message] = [m for m in llm_of(pool).requests[1] if m.role == "tool"]
    assert json.loads(message.content) == {"error": "the tool did not answer within 0.5 s"}
    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.agent_text == "Sorry, that service is slow today."
