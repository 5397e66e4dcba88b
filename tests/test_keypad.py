"""Keypad presses (DTMF) in a call: entries reach the LLM as the caller's words, a key can switch
the conversation state, and a key press stops the agent talking. Keys are pressed relative to the
agent's audio, on the file transport given a keypad."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness import fake_agent, fake_registry
from voiceflow.clock import current_clock, open_clock
from voiceflow.frames import AudioFrame
from voiceflow.providers import KeypadCallback, PlayedCallback
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import prepare
from voiceflow.runtime.session import CallResult, Session
from voiceflow.testing.fakes import ScriptedLLM, silence
from voiceflow_file import FileCall, FileTransportConfig

pytestmark = pytest.mark.anyio


class KeypadPhone(FileCall):
    """A silent caller who presses ``keys`` once the agent has been audible ``after`` seconds,
    ``gap`` seconds apart."""

    def __init__(self, keys: str, *, after: float, gap: float = 0.3) -> None:
        super().__init__(FileTransportConfig(start="immediately", lead_in=0), silence(12.0))
        self.keys, self.after, self.gap = keys, after, gap
        self._keypad: list[KeypadCallback] = []
        self._first_heard: float | None = None

    def on_dtmf(self, callback: KeypadCallback) -> None:
        self._keypad.append(callback)

    def on_played(self, callback: PlayedCallback) -> None:
        def spy(mark: object, t: float) -> None:
            self._first_heard = t if self._first_heard is None else self._first_heard
            callback(mark, t)

        super().on_played(spy)

    async def caller_audio(self) -> AsyncIterator[AudioFrame]:
        clock = current_clock()
        pressed = 0
        async for frame in super().caller_audio():
            heard = self._first_heard
            due = None if heard is None else heard + self.after + pressed * self.gap
            if due is not None and pressed < len(self.keys) and clock.now() >= due:
                for callback in self._keypad:
                    callback(self.keys[pressed], clock.now())
                pressed += 1
            yield frame


async def call(keys: str, *, after: float = 0.5, **agent: Any) -> tuple[CallResult, ScriptedLLM]:
    registry = fake_registry()
    cfg = fake_agent(registry, **agent)
    pool = ProviderPool(registry)
    await prepare(cfg, pool)
    phone = KeypadPhone(keys, after=after)
    async with open_clock("virtual") as clock:
        result = await Session(cfg, pool, phone, clock).run()
    phone.close()
    llm = next(p for p in pool.instances() if isinstance(p, ScriptedLLM))
    return result, llm


async def test_an_entry_ended_by_hash_reaches_the_llm_as_the_callers_words() -> None:
    result, llm = await call("4471#", after=1.5, prompt={"system": "x", "greeting": {"text": "Your account number?"}})
    [reply] = [t for t in result.timeline.turns if t.kind == "reply"]
    assert reply.user_text == "(pressed on the keypad: 4471#)"
    assert llm.requests[0][-1].content == "(pressed on the keypad: 4471#)"
    assert reply.outcome == "completed"


async def test_an_entry_without_an_end_key_is_over_after_the_timeout() -> None:
    result, llm = await call("42", after=1.5, keypad={"digit_timeout": 1.0},
                             prompt={"system": "x", "greeting": {"text": "Pick an option."}})
    assert [t.user_text for t in result.timeline.turns if t.kind == "reply"] == ["(pressed on the keypad: 42)"]


async def test_a_key_can_switch_the_conversation_state() -> None:
    result, llm = await call("0", after=1.5, keypad={"states": {"0": "operator"}},
                             turn_taking={"states": {"operator": {"endpointing": {"min_silence": 1.0}}}},
                             prompt={"system": "x", "greeting": {"text": "Hello there."}})
    assert result.timeline.turns[0].states == ["operator (key 0)"]
    assert llm.requests == []  # a state key is not an entry


async def test_a_key_press_stops_the_agent_talking() -> None:
    long = "Here are the options. " * 8
    result, _ = await call("1#", after=0.5, prompt={"system": "x", "greeting": {"text": long}})
    greeting = result.timeline.turns[0]
    assert greeting.outcome == "interrupted"
    assert result.timeline.turns[1].user_text == "(pressed on the keypad: 1#)"

    result, _ = await call("1#", after=0.5, keypad={"interrupts": False},
                           prompt={"system": "x", "greeting": {"text": long}})
    assert result.timeline.turns[0].outcome == "completed"
