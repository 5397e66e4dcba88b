"""One broken call never takes down another, and the end of the caller's audio is an endpoint.

Several calls served by one transport in one process (as a phone or web server does): one of
them has its recogniser die while sending audio, another has its transport crash outright; the
rest must finish exactly as usual.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
import pytest
import yaml

from harness import run_call
from voiceflow.config.base import ProviderConfig
from voiceflow.config.loader import parse_agent
from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import SessionRunner, TransportProvider
from voiceflow.runtime.runner import serve_agent
from voiceflow.testing import fakes, faults
from voiceflow.testing.fakes import silence, speech_like
from voiceflow_file import FileCall, FileTransportConfig

pytestmark = pytest.mark.anyio


class _CrashingCall(FileCall):
    async def run(self) -> None:
        await anyio.sleep(0)
        raise RuntimeError("transport bug")


class ManyCallsConfig(ProviderConfig):
    provider: Literal["many-calls"] = "many-calls"


class ManyCalls(TransportProvider[ManyCallsConfig]):
    """Serves several recorded callers at once, like a server with concurrent calls."""

    name = "many-calls"
    config_model = ManyCallsConfig
    callers: list[tuple[bytes, bool]] = []

    async def serve(self, run_session: SessionRunner) -> None:
        async with anyio.create_task_group() as tg:
            for i, (pcm, crash) in enumerate(self.callers):
                call = (_CrashingCall if crash else FileCall)(FileTransportConfig(), pcm)
                call.call_id = f"call-{i}"
                tg.start_soon(self._one, run_session, call)

    @staticmethod
    async def _one(run_session: SessionRunner, call: FileCall) -> None:
        try:
            await run_session(call)
        finally:
            call.close()


class _Plugin:
    @hookimpl
    def register_transports(self, register: Any) -> None:
        register(ManyCalls)


def agent(registry: PluginRegistry, stt: dict[str, Any]) -> Any:
    data = {
        "name": "many",
        "prompt": {"system": "Be brief.", "greeting": {"text": "Hello there."}},
        "transport": {"provider": "many-calls"},
        "vad": [{"provider": "energy"}],
        "stt": [stt],
        "llm": [{"provider": "scripted-llm", "replies": ["It is noon."]}],
        "tts": [{"provider": "tone"}],
    }
    return parse_agent(yaml.safe_dump(data), "many.yaml", registry)


async def test_a_failing_recogniser_or_a_crashing_call_leaves_the_others_alone() -> None:
    registry = PluginRegistry(plugins=[fakes, faults, _Plugin()])
    # The recogniser dies after 140 frames (2.8 s of a call's audio): only the long caller gets
    # there, in the middle of their second question.
    cfg = agent(registry, {"provider": "faulty-stt", "fault": "die_mid_stream", "after": 140,
                           "lines": ["what time is it"] * 20})
    short = silence(0.3) + speech_like(0.8) + silence(1.5)
    long = silence(0.3) + speech_like(0.8) + silence(1.5) + speech_like(0.8, seed=2) + silence(3.0)
    ManyCalls.callers = [(short, False), (long, False), (short, True), (short, False)]
    with anyio.fail_after(60):
        results = {r.call_id: r for r in await serve_agent(cfg, registry)}
    assert set(results) == {"call-0", "call-1", "call-2", "call-3"}
    for ok in ("call-0", "call-3"):
        replies = [t for t in results[ok].timeline.turns if t.kind == "reply"]
        assert results[ok].ended_because == "end of input" and replies[0].heard_text == "It is noon."
    assert results["call-2"].ended_because == "failed: RuntimeError: transport bug"
    # The long call lost its recogniser mid-call: the turn in flight got the apology, and the
    # call went on with a new stream and ended normally.
    long_call = results["call-1"]
    assert long_call.ended_because == "end of input"
    kinds = [(t.kind, t.failure) for t in long_call.timeline.turns]
    assert any(kind == "apology" and failure and "connection reset" in failure for kind, failure in kinds), kinds


async def test_a_recording_that_ends_mid_speech_still_gets_its_answer() -> None:
    """The end of input is an endpoint: no fifteen minutes of dead air."""
    registry = PluginRegistry(plugins=[fakes])
    data = {
        "name": "cut",
        "prompt": {"system": "Be brief."},
        "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}],
        "stt": [{"provider": "scripted-stt", "lines": ["what is the capital of"]}],
        "llm": [{"provider": "scripted-llm", "replies": ["Paris."]}],
        "tts": [{"provider": "tone"}],
        "unhappy_paths": {"max_call_seconds": 900},
    }
    cfg = parse_agent(yaml.safe_dump(data), "cut.yaml", registry)
    caller = silence(0.5) + speech_like(1.2)  # the recording stops while the caller speaks
    result, _, _ = await run_call(cfg, registry, caller, start="immediately", lead_in=0)
    reply = result.timeline.turns[0]
    assert (reply.kind, reply.user_text, reply.heard_text) == ("reply", "what is the capital of", "Paris.")
    assert result.ended_because == "end of input"
    ended = reply.marks["reply_heard"] - reply.origin
    assert ended < 5.0  # seconds of call time, not the 900 s limit
