"""The shipped agent on a recording cut 0.3 s before the caller stopped: it still answers.

Before the end of input counted as an endpoint, this call answered nothing and said goodbye at
the 900 s maximum call length: on a live line, fifteen minutes of dead air. Real models, the
real CLI (slow).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audio_fixtures import speech_bounds
from voiceflow.audio import read_wav, write_wav
from voiceflow.frames import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[2]
VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))

pytestmark = pytest.mark.slow


def test_the_shipped_agent_answers_a_recording_cut_mid_speech(tmp_path: Path) -> None:
    pcm = read_wav(ROOT / "agents/recordings/capital.wav")
    _, speech_end = speech_bounds(pcm)
    cut = tmp_path / "cut.wav"
    write_wav(cut, pcm[: int((speech_end - 0.3) * SAMPLE_RATE) * 2])
    out = tmp_path / "call.wav"
    result = subprocess.run(
        [VOICEFLOW, "run", str(ROOT / "agents/local.yaml"), "--input", str(cut), "--output", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    timeline = json.loads(out.with_suffix(".timeline.json").read_text())
    replies = [t for t in timeline["turns"] if t["kind"] == "reply" and t["outcome"] == "completed"]
    assert replies, timeline
    last = replies[-1]
    assert last["user_text"] and last["heard_text"]
    assert last["marks"]["reply_heard"] < speech_end + 60  # call time: an answer, not the time limit
    assert "ended: end of input" in result.stdout
