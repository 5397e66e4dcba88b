"""A real ``voiceflow serve`` in a subprocess, with the scripted providers, on a free port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from voiceflow.testing.served import http_get

VOICEFLOW = str(Path(sys.executable).with_name("voiceflow"))


def agent_file(tmp_path: Path, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "name": "load-agent",
        "prompt": {"system": "You are a test.", "greeting": {"text": "Hello there."}},
        "transport": {"provider": "websocket"},
        "vad": [{"provider": "energy"}],
        "stt": [{"provider": "scripted-stt", "lines": ["what time is it"] * 100}],
        "llm": [{"provider": "scripted-llm", "replies": ["It is noon, more or less."]}],
        "tts": [{"provider": "tone"}],
    }
    data.update(overrides)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class ServeProcess:
    """``with ServeProcess(agent_yaml) as server:`` — started, ready, and stopped at the end."""

    def __init__(self, *agents: Path, options: tuple[str, ...] = ("--log-level", "warning")) -> None:
        self.agents = agents
        self.options = options
        self.base_url = ""
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            [VOICEFLOW, "serve", *map(str, self.agents), "--plugin", "voiceflow.testing.fakes",
             "--port", "0", "--log-format", "json", *self.options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        banner = self.process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", banner)
        if found is None:
            self.process.kill()
            raise RuntimeError(f"voiceflow serve did not start: {banner}{self.process.communicate()[1]}")
        self.base_url = found.group(1)
        deadline = time.monotonic() + 60
        while http_get(self.base_url + "/readyz")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("voiceflow serve never became ready")
            time.sleep(0.05)
        return self

    def ws_url(self, agent: str) -> str:
        return "ws" + self.base_url.removeprefix("http") + f"/agents/{agent}/ws"

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 120) -> int:
        assert self.process is not None
        stdout, stderr = self.process.communicate(timeout=timeout)
        self.output += stdout + stderr
        return self.process.returncode

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.wait()
