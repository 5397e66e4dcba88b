"""Mouth-to-ear at the browser page for an agent file and a recording, next to what the file
transport reports for the same recording (the figures in docs/transports.md).

    .venv/bin/python tests/web/measure_page_latency.py agents/web.yaml agents/recordings/capital.wav

It runs ``voiceflow serve AGENT`` with the agent's own (offline) providers, has headless chromium
call the page with the recording as its microphone (after enough silence for the greeting), and
prints, per reply, the page's figure (its own audio clock: the caller's last voiced block to the
agent's first) and the server's; then ``voiceflow run AGENT --input RECORDING`` for the file
transport's figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceflow.audio import read_wav, write_wav  # noqa: E402
from voiceflow.config.loader import load_agent  # noqa: E402
from voiceflow.plugins.registry import PluginRegistry  # noqa: E402
from web.browser import browser_page  # noqa: E402

PORT = 8765
LEAD_SILENCE = 5.0
"""Seconds before the recording starts: the page connects and the greeting plays out."""


async def page_figures(agent_name: str, microphone: Path, after: float) -> list[dict[str, object]]:
    async with browser_page(microphone) as page:
        await page.goto(f"http://127.0.0.1:{PORT}/agents/{agent_name}/")
        await page.click("#call")
        await anyio.sleep(after)
        turns = (await page.evaluate("window.voiceflow"))["turns"]
        await page.click("#call")
        return [t for t in turns.values() if t["kind"] != "greeting"]


def main(agent_file: str, recording: str) -> None:
    voiceflow = str(Path(sys.executable).with_name("voiceflow"))
    name = load_agent(agent_file, PluginRegistry()).name
    pcm = read_wav(recording)
    with tempfile.TemporaryDirectory() as tmp:
        microphone = Path(tmp) / "microphone.wav"
        write_wav(microphone, bytes(int(LEAD_SILENCE * 16000) * 2) + pcm + bytes(8 * 16000 * 2))
        server = subprocess.Popen([voiceflow, "serve", agent_file, "--port", str(PORT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=2):
                        break
                except OSError:
                    time.sleep(0.5)
            after = LEAD_SILENCE + len(pcm) / 32000 + 8
            for turn in anyio.run(page_figures, name, microphone, after):
                print(f"page: turn {turn['number']} {turn['outcome']}: mouth-to-ear {turn['m2ePage']} ms "
                      f"measured in the page, {turn['m2eServer']} ms by the server")
        finally:
            server.terminate()
            server.wait(30)
        timeline = Path(tmp) / "file.timeline.json"
        subprocess.run([voiceflow, "run", agent_file, "--input", recording, "--output", str(Path(tmp) / "file.wav"),
                        "--timeline", str(timeline)], check=True, capture_output=True, env=os.environ)
        for turn in json.loads(timeline.read_text())["turns"]:
            if turn.get("kind") != "greeting":
                m2e = turn["spans"].get("mouth_to_ear")
                print(f"file: turn {turn['index']} {turn['outcome']}: mouth-to-ear "
                      f"{None if m2e is None else round(1000 * m2e)} ms")


if __name__ == "__main__":
    main(*sys.argv[1:3])
