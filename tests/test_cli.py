"""The command line as a user runs it: a real subprocess of the installed `voiceflow` script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VOICEFLOW = str(Path(sys.executable).parent / "voiceflow")


def voiceflow(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOICEFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_checked_in_schema_is_current() -> None:
    result = voiceflow("schema", "--check")
    assert result.returncode == 0, result.stderr + "\nrun `voiceflow schema` and commit the result"


def test_configuration_reference_is_current() -> None:
    result = voiceflow("docs", "--check")
    assert result.returncode == 0, result.stderr + "\nrun `voiceflow docs` and commit the result"


def test_schema_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "agent.schema.json"
    stale.write_text("{}\n")
    result = voiceflow("schema", "--check", "--output", str(stale))
    assert result.returncode == 1 and "stale" in result.stderr


def test_schema_validates_the_shipped_agents_and_lists_every_builtin_provider() -> None:
    import jsonschema
    schema = json.loads((ROOT / "schemas/agent.schema.json").read_text())
    import yaml

    for path in (ROOT / "agents").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/agent.schema.json")
    text = json.dumps(schema)
    for name in ("silero", "whisper", "llama-cpp", "piper", "espeak", "file"):
        assert f'"const": "{name}"' in text or f'"{name}"' in text
    assert "echo" not in schema["$defs"].get("EchoConfig", {}).get("title", "").lower()


def test_plugins_lists_builtins_and_the_installed_third_party_plugin() -> None:
    result = voiceflow("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["KIND", "NAME", "PACKAGE", "VERSION"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    for kind, name in [("vad", "silero"), ("stt", "whisper"), ("llm", "llama-cpp"), ("tts", "piper"),
                       ("tts", "espeak"), ("transport", "file")]:
        assert (kind, name, "voiceflow") in rows
    assert ("llm", "echo", "voiceflow-example-plugin") in rows
    assert "BROKEN" not in result.stderr


def test_validate_reports_file_line_field_and_suggestion(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "agents/local.yaml").read_text()
    bad.write_text(text.replace("    min_silence: 0.4", "    min_silense: 0.4").replace(
        "recordings/capital.wav", str(ROOT / "agents/recordings/capital.wav")))
    result = voiceflow("validate", str(bad), str(ROOT / "agents/local.yaml"))
    assert result.returncode == 1
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "min_silense" in text)
    assert f"{bad}:{line}:5: turn_taking.endpointing.min_silense: unknown field" in result.stderr
    assert "did you mean 'min_silence'?" in result.stderr
    assert "agents/local.yaml: ok" in result.stdout


def test_run_with_a_network_transport_says_to_serve_it(tmp_path: Path) -> None:
    agent = tmp_path / "web.yaml"
    agent.write_text((ROOT / "agents/local.yaml").read_text().replace(
        "  provider: file\n  input: recordings/capital.wav\n  output: ${VOICEFLOW_OUTPUT:-../call.wav}\n",
        "  provider: web\n"))
    result = voiceflow("run", str(agent))
    assert result.returncode == 2
    assert "voiceflow serve" in result.stderr and "--input" in result.stderr


def test_run_with_a_missing_recording_is_a_clear_error(tmp_path: Path) -> None:
    result = voiceflow("run", "agents/local.yaml", "--input", str(tmp_path / "nope.wav"))
    assert result.returncode == 2
    assert result.stderr == f"--input: {tmp_path / 'nope.wav'}: no such recording\n"


@pytest.mark.slow
def test_a_chain_entry_that_cannot_load_falls_back_and_an_empty_chain_is_a_clear_error(tmp_path: Path) -> None:
    """Piper refuses a voice whose sha256 does not match; espeak, next in the chain, speaks."""
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"not a voice")
    (tmp_path / "voice.onnx.json").write_text("{}")
    text = (ROOT / "agents/local.yaml").read_text().replace(
        "recordings/capital.wav", str(ROOT / "agents/recordings/capital.wav"))
    bad_piper = f"  - provider: piper\n    model_path: {voice}\n    sha256: {'a' * 64}\n"
    agent = tmp_path / "fallback.yaml"
    agent.write_text(text.replace("  - provider: piper\n    voice: joe\n", bad_piper))
    result = voiceflow("run", str(agent), "--output", str(tmp_path / "call.wav"), "--log-format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"provider not ready"' in result.stderr and "tts[0] piper:" in result.stderr  # said once
    timeline = json.loads((tmp_path / "call.timeline.json").read_text())
    spoken = [t for t in timeline["turns"] if t["heard_text"]]
    assert spoken and {t["providers"]["tts"] for t in spoken} == {"espeak"}

    only_piper = text.replace("  - provider: piper\n    voice: joe\n", bad_piper)
    only_piper = only_piper.replace("  - provider: espeak   # instant, robotic: used when Piper cannot load or stalls\n    voice: en-us\n", "")
    agent.write_text(only_piper)
    result = voiceflow("run", str(agent))
    assert result.returncode == 1
    assert "no tts provider could be prepared" in result.stderr and "sha256" in result.stderr


def test_run_with_a_recording_that_is_not_a_wav_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "caller.mp3"
    fake.write_bytes(b"ID3\x03\x00 definitely not a wav")
    result = voiceflow("run", "agents/local.yaml", "--input", str(fake))
    assert result.returncode == 2
    assert "is not a WAV file (it looks like MP3)" in result.stderr and "sox" in result.stderr
    assert result.stderr.startswith(f"--input: {fake}: ") and result.stderr.count("\n") == 1
