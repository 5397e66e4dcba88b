"""On hold: a caller who asks the agent to wait is waited for quietly, and hold music is never
answered. Music is made with sox (as hold music is), speech is real (espeak-ng, recordings)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import espeak_pcm, pocketsphinx_pcm
from harness import fake_agent, fake_registry, run_call
from voiceflow.audio import read_wav
from voiceflow.runtime.music import judge_music
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

RECORDINGS = ["goforward.raw", "numbers.raw", "something.raw", "cards/001.wav", "cards/003.wav",
              "librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
              "librivox/sense_and_sensibility_01_austen_64kb-0920.wav"]


def sox_music(tmp_path: Path, *effects: str) -> bytes:
    if shutil.which("sox") is None:
        pytest.skip("sox missing: apt-get install sox")
    out = tmp_path / "music.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), *effects], check=True)
    return read_wav(out)


CHORDS = ["synth", "0.4", "pluck", "A3", "pluck", "C4", "pluck", "E4", ":", "synth", "0.4", "pluck", "F3", "pluck",
          "A3", "pluck", "C4", ":", "synth", "0.4", "pluck", "G3", "pluck", "B3", "pluck", "D4", ":", "synth", "0.4",
          "pluck", "E3", "pluck", "G3", "pluck", "B3", "repeat", "3", "remix", "-"]
PAD = ["synth", "6", "sine", "220", "sine", "277", "sine", "330", "tremolo", "4", "60", "remix", "-"]


@pytest.mark.parametrize("effects", [CHORDS, PAD], ids=["plucked chords", "tremolo pad"])
def test_sox_music_is_music(tmp_path: Path, effects: list[str]) -> None:
    verdict = judge_music(sox_music(tmp_path, *effects))
    assert verdict is not None and verdict.music, verdict


def test_a_dial_tone_is_music() -> None:
    t = np.arange(3 * 16000) / 16000
    tone = (0.3 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t)) * 16000).astype("<i2")
    verdict = judge_music(tone.tobytes())
    assert verdict is not None and verdict.music


@pytest.mark.parametrize("name", RECORDINGS)
def test_real_speech_is_not_music(name: str) -> None:
    verdict = judge_music(pocketsphinx_pcm(name))
    assert verdict is not None and not verdict.music, verdict


@pytest.mark.parametrize("text", ["go forward ten meters", "I would like to book a table for two please"])
def test_synthetic_speech_is_not_music(text: str) -> None:
    verdict = judge_music(espeak_pcm(text))
    assert verdict is not None and not verdict.music, verdict


def agent(lines: list[str], **paths: object) -> tuple[object, object]:
    registry = fake_registry()
    cfg = fake_agent(
        registry,
        prompt={"system": "x", "greeting": {"text": "Hello."}},
        stt=[{"provider": "scripted-stt", "lines": lines}],
        unhappy_paths={"silence": {"reprompt_after": 3.0, "reprompts": ["Are you still there?"]}, **paths},
    )
    return registry, cfg


async def test_hold_on_is_answered_and_waited_for_without_re_prompts() -> None:
    registry, cfg = agent(["hold on a second please", "okay I'm back"])
    caller = speech_like(1.0) + silence(20.0) + speech_like(1.0, seed=2) + silence(6.0)
    result, _, _ = await run_call(cfg, registry, caller)
    said = [(t.kind, t.agent_text) for t in result.timeline.turns]
    assert said[1] == ("hold", "Sure, take your time.")
    assert said[2][0] == "reply"  # the caller came back after 20 s: answered, no re-prompt between
    assert ("reprompt", "Are you still there?") in said[3:]  # off hold: the silence policy is back

    registry, control = agent(["what about now", "okay I'm back"])
    result, _, _ = await run_call(control, registry, caller)
    assert [t.kind for t in result.timeline.turns][:3] == ["greeting", "reply", "reprompt"]


async def test_hold_music_is_never_answered(tmp_path: Path) -> None:
    music = sox_music(tmp_path, *CHORDS)
    registry, cfg = agent(["la la la"])
    result, _, _ = await run_call(cfg, registry, music + silence(2.0))
    kinds = [(t.kind, t.outcome) for t in result.timeline.turns]
    assert kinds == [("greeting", "completed"), ("music", "ignored")]

    registry, cfg = agent(["la la la"], hold={"detect_music": False})
    result, _, _ = await run_call(cfg, registry, music + silence(2.0))
    assert [t.kind for t in result.timeline.turns] == ["greeting", "reply"]


async def test_noise_while_on_hold_is_not_asked_about(tmp_path: Path) -> None:
    registry, cfg = agent(["one moment", "", "sorry about that, I'm back"])
    caller = speech_like(1.0) + silence(5.0) + speech_like(0.8, seed=4) + silence(5.0) + speech_like(1.0, seed=5) + silence(3.0)
    result, _, _ = await run_call(cfg, registry, caller)
    kinds = [t.kind for t in result.timeline.turns]
    assert kinds[:4] == ["greeting", "hold", "noise on hold", "reply"]
    assert "unclear" not in kinds
