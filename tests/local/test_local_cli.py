"""`voiceflow run AGENT --transport local` as a developer runs it: a real subprocess of the
installed command, the scripted providers installed beside it as a plugin package would be.

On the JACK sound card: the call starts on the default devices and Ctrl-C hangs up cleanly.
Without any sound device (PortAudio finds none), or without sounddevice, the command says what
to do, in one line, without a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_sound_card import portaudio

VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))

AGENT = """\
name: local-test
prompt:
  system: Test.
  greeting: {text: "Hello there, this greeting is long enough to be hung up on while it plays."}
transport: {provider: file}
vad: [{provider: energy}]
stt: [{provider: scripted-stt}]
llm: [{provider: scripted-llm}]
tts: [{provider: tone}]
"""


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT, encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `voiceflow` that also finds voiceflow.testing.fakes (energy VAD,
    scripted STT and LLM, tone voice): a package's metadata on PYTHONPATH, as pip installs it."""
    dist = tmp_path / "site" / "voiceflow_test_fakes-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: voiceflow-test-fakes\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text("[voiceflow]\nfakes = voiceflow.testing.fakes\n")
    return {**os.environ, "PYTHONPATH": str(dist.parent), "PYTHONUNBUFFERED": "1"}


def test_ctrl_c_hangs_up_a_call_on_the_sound_card(sound_card: str, agent: Path, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [VOICEFLOW, "run", str(agent), "--transport", "local", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in process.stderr:  # the logs: wait until the call is under way
        seen.append(line)
        if '"call started"' in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)  # the greeting is playing
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    took = time.monotonic() - signalled
    stderr = "".join(seen) + stderr
    assert process.returncode == 128 + signal.SIGINT, stderr + stdout
    assert '"local call: speak now; Ctrl-C hangs up"' in stderr
    assert "SIGINT: hanging up" in stderr
    assert "call local:system: 1 agent turns, ended: stopped by SIGINT" in stdout
    assert "Traceback" not in stderr + stdout
    assert took < 5, f"took {took:.1f} s to hang up"


def test_no_sound_device_says_what_to_do(agent: Path, env: dict[str, str]) -> None:
    portaudio()
    nowhere = {**env, "JACK_DEFAULT_SERVER": f"voiceflow-nobody-{os.getpid()}", "JACK_NO_START_SERVER": "1"}
    count = subprocess.run([sys.executable, "-c", "import sounddevice; print(len(sounddevice.query_devices()))"],
                           capture_output=True, text=True, env=nowhere, timeout=60)
    if count.stdout.strip() != "0":
        pytest.skip(f"this machine has sound devices ({count.stdout.strip() or count.stderr[-300:]})")
    result = subprocess.run([VOICEFLOW, "run", str(agent), "--transport", "local"],
                            capture_output=True, text=True, env=nowhere, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "no microphone found: PortAudio (PortAudio V19" in result.stderr
    assert "voiceflow serve AGENT --transport web" in result.stderr and "--input caller.wav" in result.stderr
    one_line(result.stderr, f"{agent}: no microphone found: ")


def test_without_sounddevice_it_says_what_to_install(agent: Path, env: dict[str, str]) -> None:
    code = ("import sys; sys.modules['sounddevice'] = None; sys.argv = ['voiceflow'] + sys.argv[1:]; "
            "from voiceflow.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "run", str(agent), "--transport", "local"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "the local transport needs the sounddevice package: pip install 'voiceflow[local]'" in result.stderr
    one_line(result.stderr, f"{agent}: the local transport needs the sounddevice package")


def one_line(stderr: str, start: str) -> None:
    """The error is one line starting ``start``, not a traceback around it."""
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith(start), stderr
