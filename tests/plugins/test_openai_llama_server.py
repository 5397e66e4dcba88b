"""The OpenAI provider against a real OpenAI-compatible server: llama-cpp-python's own, on SmolLM2.

The fake server proves the provider against OpenAI's documented format; this proves it against an
independent implementation of that format (its own SSE framing, chunk fields, auth check and
disconnect handling), all offline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from pathlib import Path

import pytest

from voiceflow.frames import Message
from voiceflow.models import ensure_model_file
from voiceflow.testing.conformance import check_llm
from voiceflow_llama_cpp import MODELS
from voiceflow_openai import OpenAIConfig, OpenAILLM

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY = "sk-local-llama-server-key"
ALIAS = "smollm2"

# llama.cpp's AMX kernels crash some VMs (see plugins/voiceflow_llama_cpp/cpu.py); the server has
# no switch for that, so on such CPUs the launcher applies the plugin's workaround first.
LAUNCHER = """
import runpy, sys
from voiceflow_llama_cpp.cpu import cpu_advertises_amx
if cpu_advertises_amx():
    import llama_cpp.llama_cpp as lib
    original = lib.llama_model_default_params
    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params
    lib.llama_model_default_params = defaults
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answering(base_url: str) -> bool:
    request = urllib.request.Request(base_url + "/models", headers={"authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def llama_server(model: Path, *, start_within: float = 120.0) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port; yields its base URL once /v1/models answers,
    and always stops it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    args = ["--model", str(model), "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
            "--api_key", KEY, "--n_ctx", "1024", "--n_threads", "2", "--verbose", "False"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-c", LAUNCHER, *args], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + start_within
            while not answering(base_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-3000:]
                    pytest.fail(f"llama_cpp.server did not start (exit {process.poll()}):\n{tail}")
                time.sleep(0.2)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with llama_server(ensure_model_file(MODELS["smollm2-135m"])) as url:
        yield url


async def test_streams_a_reply_from_llama_cpp_server(server_url: str) -> None:
    llm = OpenAILLM(OpenAIConfig(provider="openai", base_url=server_url, api_key=KEY, model=ALIAS,
                                 max_tokens=32, temperature=0.0))
    await llm.prepare()
    deltas: list[str] = []
    try:
        async with aclosing(llm.stream([Message("system", "You are a friendly assistant."),
                                        Message("user", "Tell me about dragons.")])) as stream:
            async for delta in stream:
                deltas.append(delta)
        report = await check_llm(llm)
    finally:
        await llm.aclose()
    assert len(deltas) >= 3 and "".join(deltas).strip(), deltas
    assert report.cancel_latency < 0.3
    print(f"llama_cpp.server through the openai provider: TTFB {report.ttfb * 1000:.0f} ms, "
          f"{report.items} deltas in {report.total:.2f} s, stop after cancel {report.cancel_latency * 1000:.1f} ms")


async def test_a_wrong_key_is_refused_by_the_real_server(server_url: str) -> None:
    llm = OpenAILLM(OpenAIConfig(provider="openai", base_url=server_url, api_key="sk-wrong-key-0000", model=ALIAS))
    await llm.prepare()
    try:
        with pytest.raises(Exception, match=r"the API key was refused \(401\)"):
            async with aclosing(llm.stream([Message("user", "Hi")])) as stream:
                async for _ in stream:
                    pass
    finally:
        await llm.aclose()
