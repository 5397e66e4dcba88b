"""Running whole calls in tests: an agent, a caller recording, the file transport, a clock."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import yaml

from voiceflow.audio import split_frames
from voiceflow.clock import current_clock, open_clock
from voiceflow.config.compose import AgentConfig
from voiceflow.config.loader import parse_agent
from voiceflow.frames import FRAME_BYTES, FRAME_SECONDS, AudioFrame
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import PlayedCallback
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import CallResult, Session
from voiceflow.testing import fakes
from voiceflow_file import FileCall, FileTransportConfig


def fake_registry() -> PluginRegistry:
    return PluginRegistry(plugins=[fakes])


def fake_agent(registry: PluginRegistry, **overrides: Any) -> AgentConfig:
    """An agent of scripted providers; ``overrides`` replace top-level blocks of the YAML."""
    data: dict[str, Any] = {
        "name": "test-agent",
        "prompt": {"system": "You are a test.", "greeting": {"text": "Hello there."}},
        "transport": {"provider": "file"},
        "vad": [{"provider": "energy"}],
        "stt": [{"provider": "scripted-stt", "lines": ["what time is it"]}],
        "llm": [{"provider": "scripted-llm", "replies": ["It is noon, more or less."]}],
        "tts": [{"provider": "tone"}],
    }
    data.update(overrides)
    return parse_agent(yaml.safe_dump(data), "test-agent.yaml", registry)


@dataclass(frozen=True)
class Cue:
    """A stretch of the caller's audio; ``after_agent_audio`` makes the caller wait (in silence)
    until the agent has been audible that long since the previous stretch ended: timing relative
    to what the agent does, so a slow (busy) machine moves the caller with the agent."""

    pcm: bytes
    after_agent_audio: float | None = None


class ReactiveCall(FileCall):
    """The file transport with a caller who reacts to the agent (see :class:`Cue`)."""

    MAX_WAIT = 120.0

    def __init__(self, config: FileTransportConfig, cues: list[Cue]) -> None:
        super().__init__(config, b"")
        self._cues = cues
        self._waiting_since = math.inf
        self._agent_heard_at: float | None = None

    def on_played(self, callback: PlayedCallback) -> None:
        def spy(mark: object, t: float) -> None:
            if self._agent_heard_at is None and t >= self._waiting_since:
                self._agent_heard_at = t
            callback(mark, t)

        super().on_played(spy)

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        clock = current_clock()
        self._tapes(clock.now())
        if self.config.start == "after_greeting":
            await self._greeting_done.wait()
        t = clock.now() + self.config.lead_in
        assert self._caller is not None
        for cue in self._cues:
            if cue.after_agent_audio is not None:
                self._waiting_since, self._agent_heard_at, waited = t, None, 0.0
                while waited < self.MAX_WAIT and (
                    self._agent_heard_at is None or t < self._agent_heard_at + cue.after_agent_audio
                ):
                    await clock.sleep_until(t + FRAME_SECONDS)
                    yield AudioFrame(bytes(FRAME_BYTES), t)
                    t += FRAME_SECONDS
                    waited += FRAME_SECONDS
            for pcm in split_frames(cue.pcm):
                await clock.sleep_until(t + FRAME_SECONDS)
                self._caller.put(t, pcm)
                yield AudioFrame(pcm, t)
                t += FRAME_SECONDS


async def run_call(
    agent: AgentConfig,
    registry: PluginRegistry,
    caller_pcm: bytes | list[Cue],
    *,
    pool: ProviderPool | None = None,
    clock: str = "virtual",
    **transport: Any,
) -> tuple[CallResult, FileCall, ProviderPool]:
    pool = pool or ProviderPool(registry)
    await prepare(agent, pool)
    config = FileTransportConfig(**transport)
    call = ReactiveCall(config, caller_pcm) if isinstance(caller_pcm, list) else FileCall(config, caller_pcm)
    try:
        async with open_clock(clock) as session_clock:
            result = await Session(agent, pool, call, session_clock).run()
    finally:
        call.close()
    return result, call, pool
