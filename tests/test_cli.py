"""The command line as a user runs it: a real subprocess of the installed `voiceflow` script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_run_with_a_transport_not_built_yet_says_so(tmp_path: Path) -> None:
    agent = tmp_path / "web.yaml"
    agent.write_text((ROOT / "agents/local.yaml").read_text().replace(
        "  provider: file\n  input: recordings/capital.wav\n", "  provider: web\n"))
    result = voiceflow("run", str(agent))
    assert result.returncode == 2
    assert "not built yet" in result.stderr and "--input" in result.stderr


def test_run_with_a_missing_recording_is_a_clear_error(tmp_path: Path) -> None:
    result = voiceflow("run", "agents/local.yaml", "--input", str(tmp_path / "nope.wav"))
    assert result.returncode == 2
    assert "no such recording" in result.stderr and "nope.wav" in result.stderr
