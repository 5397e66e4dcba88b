"""agents/cloud.yaml: Deepgram + OpenAI + ElevenLabs with the offline models behind each stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voiceflow.config.loader import load_agent
from voiceflow.plugins.registry import PluginRegistry

ROOT = Path(__file__).resolve().parent.parent
VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))
CLOUD = ROOT / "agents/cloud.yaml"
KEYS = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY")


def test_the_cloud_agent_validates_with_every_stage_backed_by_an_offline_provider() -> None:
    agent = load_agent(CLOUD, PluginRegistry(builtin_only=True), env={})
    assert [e.provider for e in agent.stt] == ["deepgram", "whisper"]
    assert [e.provider for e in agent.llm] == ["openai", "llama-cpp"]
    assert [e.provider for e in agent.tts] == ["elevenlabs", "deepgram-aura", "piper", "espeak"]


@pytest.mark.slow
def test_without_keys_it_says_once_which_providers_are_unavailable_and_answers_on_the_fallbacks(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    out = tmp_path / "call.wav"
    result = subprocess.run(
        [VOICEFLOW, "run", str(CLOUD), "--output", str(out), "--log-format", "json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stderr.splitlines()]
    told = [e for e in events if e["event"] in ("provider not ready", "provider unavailable, using the rest of its chain")]
    named = sorted(e.get("problem", e.get("error", "")).split(":")[0] for e in told)
    assert named == ["llm[0] openai", "stt[0] deepgram", "tts[0] elevenlabs", "tts[1] deepgram-aura"], told
    timeline = json.loads(out.with_suffix(".timeline.json").read_text())
    replies = [t for t in timeline["turns"] if t["kind"] == "reply" and t["outcome"] == "completed"]
    assert replies, timeline
    # An answer about the capital (Whisper base may hear this espeak voice's "France" as
    # "friends": tests/test_offline_agent.py says why that is not checked here).
    assert "capital" in replies[-1]["agent_text"].lower() + replies[-1]["user_text"].lower()
    assert replies[-1]["providers"] == {"llm": "llama-cpp", "tts": "piper"}
