"""Who gets a call and who does not: readiness while models load, the session limit, the access
token, and the bind rule; on a real uvicorn on 127.0.0.1 with real websockets clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness import fake_agent
from voiceflow.config.base import ProviderConfig
from voiceflow.frames import TTSAudio
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import TTSProvider
from voiceflow.serving.server import ServeControl, ServeOptions, ServingError, serve
from voiceflow.testing import fakes
from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import http_get, served_agents
from voiceflow.testing.ws_caller import CallReport, Cue, WsCaller, after_reply, greeting_heard

pytestmark = pytest.mark.anyio
VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))
START = json.dumps({"type": "start", "format": {"encoding": "pcm16", "sample_rate": 16000, "channels": 1}})


class SlowVoiceConfig(ProviderConfig):
    provider: Literal["slow-voice"] = "slow-voice"


class SlowVoice(TTSProvider[SlowVoiceConfig]):
    """A voice whose model takes as long to load as the test wants."""

    name = "slow-voice"
    config_model = SlowVoiceConfig
    loaded: ClassVar[anyio.Event]

    async def prepare(self) -> None:
        await self.loaded.wait()

    async def synthesize(self, text: str) -> AsyncIterator[TTSAudio]:
        yield TTSAudio(bytes(3200), 16_000)


@hookimpl
def register_providers(register: Any) -> None:
    register(SlowVoice)


def registry() -> PluginRegistry:
    return PluginRegistry(plugins=[fakes, sys.modules[__name__]])


def ws_agent(reg: PluginRegistry, **overrides: Any) -> Any:
    return fake_agent(reg, transport={"provider": "websocket"}, **overrides)


async def refusal(url: str) -> tuple[dict[str, Any], int | None]:
    """Connect and start like a client; return the server's first message and its close code."""
    async with connect(url) as ws:
        try:
            await ws.send(START)  # the refusal may already be on its way
        except ConnectionClosed:
            pass
        first = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        return first, ws.close_code


async def test_readyz_is_false_while_models_load_and_calls_are_refused_as_starting() -> None:
    SlowVoice.loaded = anyio.Event()
    reg = registry()
    agent = ws_agent(reg, tts=[{"provider": "slow-voice"}])
    control, listening = ServeControl(), anyio.Event()
    base: list[str] = []

    def on_listening(url: str, _: object) -> None:
        base.append(url)
        listening.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve([agent], reg, ServeOptions(port=0), control, on_listening=on_listening))
        await listening.wait()
        get = lambda path: anyio.to_thread.run_sync(http_get, base[0] + path)  # noqa: E731
        assert await get("/healthz") == (200, {"alive": True})
        status, body = await get("/readyz")
        assert status == 503 and body["ready"] is False and body["loading"] == [agent.name]
        first, code = await refusal("ws" + base[0].removeprefix("http") + f"/agents/{agent.name}/ws")
        assert first["type"] == "error" and first["code"] == "starting" and first["retry_after"] > 0
        assert code == 1013
        SlowVoice.loaded.set()
        while (await get("/readyz"))[0] != 200:
            await anyio.sleep(0.02)
        status, body = await get("/readyz")
        assert body.pop("loop_lag_ms") >= 0
        assert body.pop("audio_lag_ms") == 0  # no call in progress
        assert body == {"ready": True, "draining": False, "loading": [], "calls": 0, "learned_limit": None,
                        "agents": {agent.name: {"calls": 0, "max_sessions": 20}}}
        control.drain()


async def test_calls_beyond_max_sessions_are_refused_politely_and_the_others_go_on() -> None:
    reg = registry()
    agent = ws_agent(reg, serving={"max_sessions": 2},
                     stt=[{"provider": "scripted-stt", "lines": ["what time is it"] * 4}])
    release = anyio.Event()
    reports: list[CallReport] = []

    async with served_agents([agent], reg) as server:
        url = server.ws_url(agent.name)

        async def hold() -> None:
            cues = [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]
            reports.append(await WsCaller(url, cues, hang_up_when=lambda r: release.is_set() and after_reply(r)).run())

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            tg.start_soon(hold)
            while (await server.get("/readyz"))[1]["agents"][agent.name]["calls"] < 2:
                await anyio.sleep(0.02)
            first, code = await refusal(url)
            assert first["code"] == "busy" and "2 calls at once" in first["message"] and first["retry_after"] > 0
            assert code == 1013
            release.set()
        assert (await server.get("/readyz"))[1]["agents"][agent.name]["calls"] == 0
        third = await WsCaller(url, [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]).run()
    for report in [*reports, third]:
        assert report.hangup is not None and report.close_code == 1000
    assert all(report.turns_ended("reply")[0]["outcome"] == "completed" for report in reports)


async def test_with_a_token_only_callers_who_present_it_get_through() -> None:
    reg = registry()
    agent = ws_agent(reg, stt=[{"provider": "scripted-stt", "lines": ["what time is it"] * 2}])
    token = "s3cret-token"
    async with served_agents([agent], reg, token=token) as server:
        url = server.ws_url(agent.name)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            async with connect(url + "?access_token=wrong"):
                pass
        assert await server.get("/healthz") == (200, {"alive": True})
        assert (await server.get("/readyz"))[0] == 200
        assert (await server.get(f"/agents/{agent.name}/ws"))[0] == 401
        cues = [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]
        reports: list[CallReport] = []

        async def call(caller: WsCaller) -> None:
            reports.append(await caller.run())

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, WsCaller(url, cues, token=token))  # Authorization: Bearer
            tg.start_soon(call, WsCaller(url + f"?access_token={token}", cues))
    assert len(reports) == 2
    for report in reports:
        assert report.turns_ended("reply")[0]["outcome"] == "completed" and report.close_code == 1000


async def test_binding_beyond_loopback_without_a_token_is_refused_with_the_remedy() -> None:
    reg = registry()
    agent = ws_agent(reg)
    with pytest.raises(ServingError, match="VOICEFLOW_ACCESS_TOKEN"):
        await serve([agent], reg, ServeOptions(host="0.0.0.0", port=0), ServeControl())


def test_the_command_refuses_a_public_bind_without_a_token_before_loading_anything(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text("name: a\nprompt: {system: hi}\ntransport: {provider: websocket}\n"
                     "vad: [{provider: energy}]\nstt: [{provider: scripted-stt}]\n"
                     "llm: [{provider: scripted-llm}]\ntts: [{provider: tone}]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "VOICEFLOW_ACCESS_TOKEN"}
    result = subprocess.run(
        [VOICEFLOW, "serve", str(agent), "--plugin", "voiceflow.testing.fakes", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "--host 0.0.0.0" in result.stderr and "VOICEFLOW_ACCESS_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_serving_an_agent_on_the_file_transport_says_what_to_do(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text("name: a\nprompt: {system: hi}\ntransport: {provider: file}\n"
                     "vad: [{provider: energy}]\nstt: [{provider: scripted-stt}]\n"
                     "llm: [{provider: scripted-llm}]\ntts: [{provider: tone}]\n", encoding="utf-8")
    result = subprocess.run(
        [VOICEFLOW, "serve", str(agent), "--plugin", "voiceflow.testing.fakes", "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "transport 'file' does not take calls over the network" in result.stderr
    assert "websocket" in result.stderr and "Traceback" not in result.stderr


def test_run_on_a_served_transport_says_to_serve_it_before_loading_anything(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text("name: a\nprompt: {system: hi}\ntransport: {provider: websocket}\n"
                     "vad: [{provider: silero}]\nstt: [{provider: whisper}]\n"
                     "llm: [{provider: openai, model: gpt-4o-mini}]\ntts: [{provider: espeak}]\n", encoding="utf-8")
    result = subprocess.run([VOICEFLOW, "run", str(agent)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "takes calls over the network: run `voiceflow serve" in result.stderr
