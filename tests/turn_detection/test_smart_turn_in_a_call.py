"""The real smart-turn model deciding a real caller's pause inside a whole call.

A LibriVox reader says "And Mr. John Dashwood had then leisure to consider how much", pauses
0.8 s (a quiet line, not digital silence), and finishes the sentence. Silero VAD hears the pause;
with the 0.45 s silence rule alone the agent answers into it; with smart-turn the verdict
("unfinished") holds the turn open and the agent answers the whole sentence once. The STT is
scripted (this is about the audio model, not recognition); the virtual clock counts the model's
compute as real time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audio_fixtures import noise, pocketsphinx_pcm, speech_bounds
from harness import fake_agent, fake_registry, run_call
from voiceflow.frames import SAMPLE_RATE

pytestmark = pytest.mark.anyio

FIRST = "and mister john dashwood had then leisure to consider how much"
SECOND = "there might be prudently in his power to do for them"
CUT = 4.22  # seconds into the recording: after "much"


def paused_sentence() -> bytes:
    pcm: bytes = pocketsphinx_pcm("librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
    end = round(speech_bounds(pcm)[1] * SAMPLE_RATE)
    cut = round(CUT * SAMPLE_RATE)
    audio: bytes = pcm[: 2 * cut] + noise(0.8, dbfs=-65.0) + pcm[2 * cut : 2 * end] + noise(4.0, dbfs=-65.0)
    return audio


def agent(turn_detection: list[dict[str, Any]] | None) -> tuple[Any, Any]:
    registry = fake_registry()
    extra = {"turn_detection": turn_detection} if turn_detection else {}
    cfg = fake_agent(
        registry,
        prompt={"system": "x"},
        vad=[{"provider": "silero"}],
        stt=[{"provider": "scripted-stt", "lines": [FIRST, SECOND]}],
        # The words are left out of it: the audio model alone decides this pause.
        turn_taking={"endpointing": {"min_silence": 0.45, "transcript_rules": {"enabled": False},
                                     "turn_model": {"unfinished_silence": 2.0}}},
        **extra,
    )
    return registry, cfg


def replies(result: Any) -> list[Any]:
    return [t for t in result.timeline.turns if t.kind == "reply" and t.outcome != "discarded"]


async def test_smart_turn_holds_the_turn_over_a_real_mid_sentence_pause(model_file: Path) -> None:
    registry, cfg = agent([{"provider": "smart-turn"}])
    result, _, _ = await run_call(cfg, registry, paused_sentence(), start="immediately", lead_in=0)
    [reply] = replies(result)  # a reply prepared during the pause is dropped unheard
    assert reply.user_text == f"{FIRST} {SECOND}" and reply.outcome == "completed"
    unfinished, finished = reply.endpointing
    assert unfinished.startswith("smart-turn: unfinished"), reply.endpointing
    assert finished.startswith("smart-turn: finished"), reply.endpointing


async def test_without_it_the_silence_rule_answers_into_the_pause() -> None:
    registry, cfg = agent(None)
    result, _, _ = await run_call(cfg, registry, paused_sentence(), start="immediately", lead_in=0)
    first, second = replies(result)
    assert (first.user_text, first.outcome) == (FIRST, "interrupted")  # the agent talked over the caller
    assert second.user_text == SECOND
