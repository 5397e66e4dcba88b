"""Function calling through the real ``openai`` SDK against the fake OpenAI server: tool-call
fragments joined, the tool definitions and the tool history on the wire as OpenAI expects them,
and a whole call whose OpenAI model looks something up with a webhook tool."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import pytest
import yaml

from harness import run_call
from voiceflow.config.loader import parse_agent
from voiceflow.frames import Message, ToolCall, ToolSpec
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing import fakes
from voiceflow.testing.fake_openai import FakeOpenAI, Fault
from voiceflow.testing.fake_webhook import FakeWebhook, WebhookAnswer
from voiceflow.testing.fakes import silence, speech_like
from voiceflow_openai import OpenAIConfig, OpenAILLM

pytestmark = pytest.mark.anyio

KEY = "sk-test-tools-0123456789"
WEATHER = ToolSpec("get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


async def llm_for(server: FakeOpenAI) -> OpenAILLM:
    llm = OpenAILLM(OpenAIConfig.model_validate(
        {"provider": "openai", "api_key": KEY, "base_url": server.base_url,
         "timeouts": {"connect": 2, "first_byte": 2, "idle": 2}}))
    await llm.prepare()
    return llm


async def items(llm: OpenAILLM, messages: list[Message], tools: list[ToolSpec]) -> list[str | ToolCall]:
    async with aclosing(llm.stream_with_tools(messages, tools)) as stream:  # type: ignore[type-var]
        return [item async for item in stream]


async def test_tool_calls_are_joined_from_fragments_and_come_after_the_text() -> None:
    reply = ('Let me look. [[call get_weather {"city": "Reykjavik, Iceland"}]] '
             '[[call get_weather {"city": "Oslo"}]]')
    async with FakeOpenAI(replies=[reply], api_key=KEY) as server:
        llm = await llm_for(server)
        got = await items(llm, [Message("user", "Weather in Reykjavik and Oslo?")], [WEATHER])
        await llm.aclose()
    text = "".join(i for i in got if isinstance(i, str))
    calls = [i for i in got if isinstance(i, ToolCall)]
    assert text == "Let me look."
    assert isinstance(got[-1], ToolCall) and isinstance(got[-2], ToolCall)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Reykjavik, Iceland"}), ("get_weather", {"city": "Oslo"})]
    assert len({c.id for c in calls}) == 2
    [request] = server.chat_requests
    assert request.params["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER.description, "parameters": WEATHER.parameters}}]


async def test_the_tool_history_goes_out_in_the_chat_completions_shape() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Oslo"}')
    history = [
        Message("user", "Weather in Oslo?"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", '{"weather": "sunny"}', tool_call_id="call_1"),
    ]
    async with FakeOpenAI(replies=["Sunny in Oslo."], api_key=KEY) as server:
        llm = await llm_for(server)
        got = await items(llm, history, [WEATHER])
        await llm.aclose()
    assert "".join(i for i in got if isinstance(i, str)) == "Sunny in Oslo."
    assert server.chat_requests[0].messages[1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"weather": "sunny"}'},
    ]


async def test_a_stream_cut_mid_tool_call_runs_no_tool() -> None:
    """Dropped after the text but before the finish: the half-streamed call must not be handed on."""
    reply = 'One moment. [[call get_weather {"city": "Oslo"}]]'
    async with FakeOpenAI(replies=[reply], api_key=KEY, fault=Fault("disconnect", after=3)) as server:
        llm = await llm_for(server)
        got: list[str | ToolCall] = []
        with pytest.raises(Exception, match="openai"):
            async with aclosing(llm.stream_with_tools([Message("user", "Oslo?")], [WEATHER])) as stream:  # type: ignore[type-var]
                async for item in stream:
                    got.append(item)
        await llm.aclose()
    assert not any(isinstance(i, ToolCall) for i in got)


async def test_a_model_without_tools_answers_a_history_with_tool_entries_in_text() -> None:
    """The fallback case: the offline model cannot call tools, so the history's tool calls and
    results reach it as notes."""
    scripted = fakes.ScriptedLLM(fakes.ScriptedLLMConfig(replies=["Sunny."], first_token_delay=0))
    history = [
        Message("user", "Weather in Oslo?"),
        Message("assistant", "Let me see.", tool_calls=(ToolCall("c1", "get_weather", '{"city": "Oslo"}'),)),
        Message("tool", '{"weather": "sunny"}', tool_call_id="c1"),
    ]
    from voiceflow.providers import LLMProvider

    plain = LLMProvider.stream_with_tools(scripted, history, [WEATHER])
    out = [item async for item in plain]
    assert out == ["Sunny."]
    assert [(m.role, m.content) for m in scripted.requests[0]] == [
        ("user", "Weather in Oslo?"),
        ("assistant", "Let me see."),
        ("system", 'The assistant called: get_weather({"city": "Oslo"})'),
        ("system", 'Tool result: {"weather": "sunny"}'),
    ]
    assert OpenAILLM.calls_tools() and not LLMProvider.calls_tools.__func__(type("Plain", (LLMProvider,), {}))  # type: ignore[attr-defined]


async def test_a_call_where_the_openai_model_uses_a_webhook_tool() -> None:
    registry = PluginRegistry(plugins=[fakes])
    async with (
        FakeWebhook({"/weather": WebhookAnswer(json={"weather": "sunny", "celsius": 21})}) as hook,
        FakeOpenAI(replies=['[[call get_weather {"city": "Oslo"}]]', "It is sunny and 21 degrees in Oslo."],
                   api_key=KEY) as server,
    ):
        data: dict[str, Any] = {
            "name": "weather",
            "prompt": {"system": "You tell the weather."},
            "transport": {"provider": "file"},
            "vad": [{"provider": "energy"}],
            "stt": [{"provider": "scripted-stt", "lines": ["what is the weather in oslo"]}],
            "llm": [{"provider": "openai", "api_key": KEY, "base_url": server.base_url},
                    {"provider": "scripted-llm", "replies": ["Sorry."]}],
            "tts": [{"provider": "tone"}],
            "tools": [{"name": "get_weather", "description": "The weather in a city.",
                       "parameters": WEATHER.parameters, "webhook": {"url": hook.url("/weather")},
                       "filler": "Let me check.", "filler_after": 2.0}],
        }
        cfg = parse_agent(yaml.safe_dump(data), "weather.yaml", registry)
        caller = silence(0.3) + speech_like(1.0) + silence(3.0)
        result, _, pool = await run_call(cfg, registry, caller, start="immediately", lead_in=0, clock="real")
        await pool.aclose()
    assert [r.body for r in hook.requests] == [{"city": "Oslo"}]
    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.outcome == "completed"
    assert reply.agent_text == "It is sunny and 21 degrees in Oslo."
    second = server.chat_requests[1].messages
    assert second[-1] == {"role": "tool", "tool_call_id": second[-2]["tool_calls"][0]["id"],
                          "content": json.dumps({"weather": "sunny", "celsius": 21})}
