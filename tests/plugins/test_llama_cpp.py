"""The llama.cpp LLM provider against real GGUF models (SmolLM2 for speed, Qwen for sense)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from voiceflow.frames import Message
from voiceflow.models import ensure_model_file
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderKind, ProviderUnavailable
from voiceflow_llama_cpp import MODELS, LlamaCppConfig, LlamaCppLLM

pytestmark = pytest.mark.anyio

PROMPT = [
    Message("system", "You are a friendly voice assistant."),
    Message("user", "Tell me a long story about a dragon who learns to bake bread."),
]


@pytest.fixture(scope="module")
async def smol() -> AsyncIterator[LlamaCppLLM]:
    llm = LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", model="smollm2-135m", max_tokens=48))
    await llm.prepare()
    yield llm
    await llm.aclose()


def _producer_alive() -> bool:
    return any(thread.name == "llama-cpp" for thread in threading.enumerate())


async def _wait_producer_gone(limit: float = 1.0) -> float:
    start = time.perf_counter()
    while _producer_alive():
        assert time.perf_counter() - start < limit, "generation thread still running"
        await anyio.sleep(0.005)
    return time.perf_counter() - start


def test_registered_as_plugin() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert registry.get(ProviderKind.LLM, "llama-cpp").cls is LlamaCppLLM


async def test_streams_several_deltas(smol: LlamaCppLLM) -> None:
    start = time.perf_counter()
    stamps: list[float] = []
    text = ""
    async for delta in smol.stream(PROMPT):
        stamps.append(time.perf_counter() - start)
        text += delta
    assert len(stamps) >= 10
    assert text.strip()
    assert stamps[0] < stamps[-1] / 3, f"first delta at {stamps[0]:.3f}s, last at {stamps[-1]:.3f}s"


async def test_warm_reads_the_prompt_and_leaves_the_model_ready(smol: LlamaCppLLM) -> None:
    system = [Message("system", "You are a terse assistant for a bakery.")]
    await smol.warm(system)
    # The cache now starts with the system prompt: a request with that prefix streams as usual.
    text = ""
    async for delta in smol.stream([*system, Message("user", "Do you sell bread?")]):
        text += delta
    assert text.strip()
    assert smol._llama.n_tokens > 0  # the KV cache holds the last prompt (+ reply)


async def test_break_stops_generation_and_frees_model(smol: LlamaCppLLM) -> None:
    async with aclosing(smol.stream(PROMPT)) as deltas:
        async for _ in deltas:
            break
    assert await _wait_producer_gone() < 0.5
    again = [delta async for delta in smol.stream(PROMPT)]
    assert len(again) >= 10


async def test_cancel_stops_generation_and_frees_model(smol: LlamaCppLLM) -> None:
    received: list[str] = []

    async def consume() -> None:
        async for delta in smol.stream(PROMPT):
            received.append(delta)

    with anyio.move_on_after(10) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            while len(received) < 2:
                await anyio.sleep(0.005)
            tg.cancel_scope.cancel()  # barge-in
    assert not scope.cancelled_caught
    assert await _wait_producer_gone() < 0.5
    start = time.perf_counter()
    async with aclosing(smol.stream(PROMPT)) as deltas:
        first = await anext(deltas)
    assert first
    assert time.perf_counter() - start < 2.0


async def test_concurrent_requests_take_turns(smol: LlamaCppLLM) -> None:
    results: list[str] = ["", ""]

    async def ask(index: int) -> None:
        async for delta in smol.stream(PROMPT):
            results[index] += delta

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, 0)
        tg.start_soon(ask, 1)
    assert all(result.strip() for result in results)


async def test_wrong_sha256_is_refused(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(ensure_model_file(MODELS["smollm2-135m"]).read_bytes()[: 1 << 20])
    llm = LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", model_path=gguf, sha256="0" * 64))
    with pytest.raises(ProviderUnavailable, match="sha256"):
        await llm.prepare()


async def test_missing_model_path_is_unavailable(tmp_path: Path) -> None:
    llm = LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", model_path=tmp_path / "nope.gguf"))
    with pytest.raises(ProviderUnavailable, match="does not exist"):
        await llm.prepare()


async def test_corrupt_gguf_is_unavailable(tmp_path: Path) -> None:
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    llm = LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", model_path=gguf))
    with pytest.raises(ProviderUnavailable, match="cannot load"):
        await llm.prepare()


def test_sha256_without_model_path_is_rejected() -> None:
    with pytest.raises(ValueError, match="sha256"):
        LlamaCppConfig(provider="llama-cpp", sha256="0" * 64)


@pytest.mark.slow
async def test_qwen_knows_paris() -> None:
    llm = LlamaCppLLM(LlamaCppConfig(provider="llama-cpp", temperature=0.0))
    await llm.prepare()
    try:
        question = "What is the capital of France? Answer in one short sentence."
        messages = [Message("system", "You are a helpful voice assistant."), Message("user", question)]
        reply = "".join([delta async for delta in llm.stream(messages)])
    finally:
        await llm.aclose()
    assert "paris" in reply.lower(), reply
