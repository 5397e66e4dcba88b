"""A person calling an agent from the browser page, played by headless chromium: its microphone
is a WAV of real (espeak-ng) speech, the page is the one the web transport serves, the server is
the real ``voiceflow serve`` stack on 127.0.0.1, the providers are the scripted fakes.

The caller asks a question, lets the agent answer for a while, then talks over it. What must
hold, measured where the caller is (in the page, on its own audio clock):

* the agent's answer reaches the page as sound (its level in the page) and as text;
* talking over the agent stops its voice well before the answer would have ended, and the turn
  is marked interrupted, with the heard text cut short;
* the caller's second question is answered in full.

No figure here is compared with a wall-clock limit: the caller's timing is in the recording and
every check is relative to what the agent did, so a busy machine moves both together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from audio_fixtures import espeak_pcm, silence
from harness import fake_agent
from voiceflow.audio import write_wav
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.testing import fakes
from voiceflow.testing.served import served_agents
from web.browser import browser_page

pytestmark = pytest.mark.anyio

ANSWER = ("The capital of France is Paris, a city on the Seine with many museums, bridges, cafes "
          "and a very tall iron tower.")
SECOND_ANSWER = "Spain is sunny."
SECONDS_PER_CHAR = 0.06
"""The tone voice's pace: the answer would take ``len(ANSWER) × 0.06`` ≈ 6.9 s to say."""
AUDIBLE = 0.05
"""RMS (full scale 1) above which the page is hearing the agent's tone (sent at about 0.21)."""
GIVE_UP = 90.0
"""A guard against a hung call, not a measurement."""


def caller_recording(path: Path) -> Path:
    """3 s for the page to connect and the greeting to play, the question, 3 s of the answer,
    then the caller talks over it; silence after."""
    pcm = (silence(3.0) + espeak_pcm("What is the capital of France?") + silence(3.0)
           + espeak_pcm("Please tell me about Spain instead.") + silence(8.0))
    write_wav(path, pcm)
    return path


def agent(registry: PluginRegistry) -> Any:
    return fake_agent(
        registry,
        name="browser-test",
        transport={"provider": "web"},
        vad=[{"provider": "energy", "threshold_db": -45}],
        stt=[{"provider": "scripted-stt", "lines": ["what is the capital of france", "tell me about spain"]}],
        llm=[{"provider": "scripted-llm", "replies": [ANSWER, SECOND_ANSWER]}],
        tts=[{"provider": "tone", "seconds_per_char": SECONDS_PER_CHAR}],
    )


async def page_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("window.voiceflow")
    return state


def during(stretch: dict[str, float], levels: list[list[float]]) -> list[float]:
    return [rms for t, rms in levels if stretch["start"] <= t <= (stretch["end"] or float("inf"))]


async def test_a_browser_caller_hears_the_answer_and_interrupts_it(tmp_path: Path) -> None:
    registry = PluginRegistry(plugins=[fakes])
    config = agent(registry)
    async with served_agents([config], registry) as server, \
            browser_page(caller_recording(tmp_path / "caller.wav")) as page:
        await page.goto(f"{server.base_url}/agents/{config.name}/")
        await page.click("#call")
        with anyio.fail_after(GIVE_UP):
            while not _answered_twice(state := await page_state(page)):
                assert state["status"] != "ended", f"the call ended early: {state['ended']}"
                await anyio.sleep(0.2)
        text = await page.inner_text("#turns")
        await page.click("#call")  # hang up
        with anyio.fail_after(GIVE_UP):
            while (await page_state(page))["status"] != "ended":
                await anyio.sleep(0.1)
        ended = (await page_state(page))["ended"]

    turns = state["turns"]
    first, second = turns["1"], turns["2"]
    # The answer reached the page as text, and the caller's words were transcribed.
    assert "what is the capital of france" in text and "The capital of France is Paris" in text
    assert SECOND_ANSWER in text and second["outcome"] == "completed"

    # ... and as sound: the page heard the agent's voice for the first answer, then the second.
    mic, voice = state["mic"], state["agent"]
    question, interruption = mic[0], mic[1]
    answer = next(s for s in voice if s["start"] > question["end"])
    assert max(during(answer, state["agentLevels"])) > AUDIBLE

    # Talking over the agent stopped it: its voice ended after the caller started talking over it
    # and long before the answer would have ended; the turn says so and the text was cut.
    assert first["outcome"] == "interrupted"
    assert answer["start"] < interruption["start"] < answer["end"]
    assert answer["end"] - answer["start"] < 0.8 * len(ANSWER) * SECONDS_PER_CHAR
    heard = first["heard"].removesuffix("…")
    assert heard and ANSWER.startswith(heard) and len(heard) < len(ANSWER)
    later = [s for s in voice if s["start"] > answer["end"]]
    assert later and later[0]["start"] > interruption["end"]  # silent until the next answer

    # The server kept the same heard text in the conversation, and the call ended as hung up.
    result = server.results[-1]
    assert [t.outcome for t in result.timeline.turns] == ["completed", "interrupted", "completed"]
    assert result.timeline.turns[1].heard_text == first["heard"]
    assert ended == {"reason": "caller hung up"}

    # Mouth-to-ear as the page measured it, next to the server's figure (printed for the docs).
    assert first["m2ePage"] is not None and first["m2ePage"] > 0
    print(f"\nmouth-to-ear, page: {first['m2ePage']} / {second['m2ePage']} ms; "
          f"server: {first['m2eServer']} / {second['m2eServer']} ms")


def _answered_twice(state: dict[str, Any]) -> bool:
    turns = state["turns"]
    return "2" in turns and bool(turns["2"]["outcome"])
