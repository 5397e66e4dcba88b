"""Real speech through the sound card to real models: Silero hears it and Whisper understands it.

The caller says "go forward ten meters" into the JACK microphone (local_sound_card.py); the
transport captures it at 48 kHz through PortAudio and resamples it to 16 kHz; Silero VAD and
Whisper base take it from there, and the example plugin's echo LLM says it back. What this
proves beyond the scripted tests is that the captured audio is good enough to be understood:
levels, resampling and framing keep speech intact. Slow: it loads the models.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from local_sound_card import Caller
from test_local_sound_card import DEVICES, Run, spoken_turns, talk

from audio_fixtures import GOFORWARD_TEXT, goforward, word_error_rate
from harness import fake_agent, fake_registry

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_whisper_understands_the_caller_through_the_sound_card(make_caller: Callable[..., Caller]) -> None:
    caller = make_caller(capture_latency=0.02)
    registry = fake_registry()
    agent = fake_agent(registry, transport=DEVICES, vad=[{"provider": "silero"}],
                       stt=[{"provider": "whisper", "model": "base"}], llm=[{"provider": "echo"}])

    async def script(run: Run) -> None:
        await run.turn_over(0)
        caller.say(goforward())
        await run.turn_over(1)

    result, _ = await talk(agent, registry, caller, script)
    reply = spoken_turns(result)[1]
    assert word_error_rate(GOFORWARD_TEXT, reply.user_text) == 0, reply.user_text
    assert reply.outcome == "completed", reply.as_dict()
