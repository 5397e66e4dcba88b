"""Ctrl-C and SIGTERM during a real call: out within a second, recording and timeline kept, no
traceback. Runs the real CLI on real models (Silero, Whisper, espeak) with the echo LLM, in real
time, and signals it once the agent has started speaking (timed on what the agent does, not on
the clock: the greeting's first log line)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audio_fixtures import espeak_pcm, pad
from voiceflow.audio import write_wav

VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))
pytestmark = pytest.mark.slow

AGENT = """\
name: signal-test
prompt:
  system: Repeat.
  greeting: {{text: "Hello, this is a rather long greeting so that there is time to interrupt it while it plays."}}
transport: {{provider: file, input: {recording}, realtime: true}}
vad: [{{provider: silero}}]
stt: [{{provider: whisper}}]
llm: [{{provider: echo}}]
tts: [{{provider: espeak}}]
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_call_ends_it_fast_and_keeps_what_happened(tmp_path: Path, signum: int) -> None:
    recording = tmp_path / "caller.wav"
    write_wav(recording, pad(espeak_pcm("What is the capital of France?"), 0.3, 1.0))
    agent = tmp_path / "agent.yaml"
    agent.write_text(AGENT.format(recording=recording), encoding="utf-8")
    out = tmp_path / "call.wav"
    process = subprocess.Popen(
        [VOICEFLOW, "run", str(agent), "--output", str(out), "--realtime", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    seen: list[str] = []
    for line in process.stderr:  # wait until the call is really under way
        seen.append(line)
        if '"call started"' in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # the greeting is playing (real time)
    signalled = time.monotonic()
    process.send_signal(signum)
    try:
        stdout, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    took = time.monotonic() - signalled
    stderr = "".join(seen) + stderr
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "BrokenResourceError" not in stderr, stderr
    print(f"exit took {took:.3f} s")
    assert took < 3.0, f"took {took:.2f} s to exit"  # ~1 s on an idle machine; room for a busy one
    assert out.exists() and out.stat().st_size > 44
    timeline = json.loads(out.with_suffix(".timeline.json").read_text())
    assert timeline["turns"] and timeline["turns"][0]["kind"] == "greeting"
    assert "stopped by" in stdout or "stopped by" in stderr
