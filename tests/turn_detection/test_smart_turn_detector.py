"""The smart-turn detector on real recorded speech (Debian's pocketsphinx-testdata).

A finished sentence must score "complete" and the same recording stopped mid-sentence
"incomplete", by a wide margin: the cases were chosen where the model's answer holds when the cut
moves by +/- 60 ms (docs/end-of-turn-model.md), so the assertions are on the threshold with room
to spare, never on exact floats. Synthetic espeak-ng speech is not used: the model's scores on it
swing with the silence kept after it.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from audio_fixtures import pocketsphinx_pcm, speech_bounds
from voiceflow.frames import SAMPLE_RATE
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderError, ProviderKind, ProviderUnavailable
from voiceflow_smart_turn import SMART_TURN_V32, SmartTurnConfig, SmartTurnDetector
from voiceflow_smart_turn.model import SmartTurnModel

pytestmark = pytest.mark.anyio

LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-{}.wav"
COMPLETE_ABOVE = 0.7
INCOMPLETE_BELOW = 0.3


def until_speech_end(name: str) -> bytes:
    """The recording up to the end of its speech: what the runtime hands the detector at the
    pause after the caller's last word (audio ending where the silence began)."""
    pcm: bytes = pocketsphinx_pcm(name)
    return pcm[: 2 * round(speech_bounds(pcm)[1] * SAMPLE_RATE)]


def cut_at(name: str, seconds: float) -> bytes:
    """The recording stopped at ``seconds``, as if the caller paused there."""
    pcm: bytes = pocketsphinx_pcm(name)
    return pcm[: 2 * round(seconds * SAMPLE_RATE)]


# (recording, where it is cut, the words up to the cut); each recording ends a sentence.
CUTS = [
    ("something.raw", 1.46, "go somewhere and do"),
    (LIBRIVOX.format("0870"), 2.02, "and mister john dashwood had then"),
    (LIBRIVOX.format("0870"), 4.22, "...had then leisure to consider how much"),
    (LIBRIVOX.format("0870"), 5.74, "...how much there might be prudently in his"),
]
COMPLETE = ["goforward.raw", "something.raw", "cards/001.wav", "cards/005.wav", LIBRIVOX.format("0870")]
"""Recordings that end where the speaker finished (a command, a card list, a sentence). Not the
other LibriVox clips: they end at a comma or semicolon of the novel, read as going on."""


@pytest.fixture(scope="module")
async def detector(model_file: Path) -> AsyncIterator[SmartTurnDetector]:
    provider = SmartTurnDetector(SmartTurnConfig())
    await provider.prepare()
    yield provider
    await provider.aclose()


@pytest.mark.parametrize("name", COMPLETE)
async def test_a_finished_utterance_scores_complete(detector: SmartTurnDetector, name: str) -> None:
    assert await detector.turn_complete(until_speech_end(name), "") > COMPLETE_ABOVE


@pytest.mark.parametrize(("name", "seconds", "words"), CUTS, ids=[c[2] for c in CUTS])
async def test_the_same_speech_stopped_mid_sentence_scores_incomplete(
    detector: SmartTurnDetector, name: str, seconds: float, words: str
) -> None:
    stopped = await detector.turn_complete(cut_at(name, seconds), "")
    finished = await detector.turn_complete(until_speech_end(name), "")
    assert stopped < INCOMPLETE_BELOW < COMPLETE_ABOVE < finished


async def test_inference_runs_off_the_event_loop(detector: SmartTurnDetector) -> None:
    """Another task keeps running while a verdict is computed: no caller's audio waits for it."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.002)
            ticks += 1

    audio = until_speech_end(LIBRIVOX.format("0870"))
    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await anyio.sleep(0)
        started = time.perf_counter()
        for _ in range(3):
            await detector.turn_complete(audio, "")
        took = time.perf_counter() - started
        group.cancel_scope.cancel()
    assert ticks >= 3, f"the event loop was blocked: {ticks} ticks in {took:.3f} s"


async def test_a_cancelled_verdict_stops_the_inference_at_once(
    detector: SmartTurnDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller spoke again: the pending verdict is dropped and the inference aborted where it
    is, rather than finished in the background on a core the reply now needs."""
    started = threading.Event()
    outcomes: list[float | None] = []
    real_score = SmartTurnModel.score

    def spy(model: SmartTurnModel, pcm: bytes, stop: Any) -> float | None:
        started.set()
        outcomes.append(result := real_score(model, pcm, stop))
        return result

    monkeypatch.setattr(SmartTurnModel, "score", spy)
    audio = until_speech_end(LIBRIVOX.format("0870"))
    scope = anyio.CancelScope()

    async def verdict() -> None:
        with scope:
            await detector.turn_complete(audio, "")

    async with anyio.create_task_group() as group:
        group.start_soon(verdict)
        while not started.is_set():
            await anyio.sleep(0.0005)
        cancelled_at = time.perf_counter()
        scope.cancel()
    returned_after = time.perf_counter() - cancelled_at
    assert scope.cancelled_caught
    assert outcomes == [None], "the inference ran to the end"
    assert returned_after < 0.1, f"the cancelled call took {returned_after:.3f} s to return"
    assert await detector.turn_complete(audio, "") > COMPLETE_ABOVE  # and the next verdict is fine


async def test_concurrent_calls_share_one_session_and_agree(model_file: Path) -> None:
    provider = SmartTurnDetector(SmartTurnConfig(concurrency=2))
    twin = SmartTurnDetector(SmartTurnConfig(concurrency=2))
    await provider.prepare()
    await twin.prepare()
    assert provider._model is twin._model  # one loaded model per (file, threads) in a process
    clips = [until_speech_end("goforward.raw"), cut_at(*CUTS[0][:2])] * 3
    alone = [await provider.turn_complete(clip, "") for clip in clips]
    together: list[float] = [0.0] * len(clips)

    async def judge(i: int) -> None:
        together[i] = await provider.turn_complete(clips[i], "")

    async with anyio.create_task_group() as group:
        for i in range(len(clips)):
            group.start_soon(judge, i)
    assert together == pytest.approx(alone, abs=1e-6)


async def test_no_audio_or_no_prepare_is_a_provider_error(detector: SmartTurnDetector) -> None:
    with pytest.raises(ProviderError, match="no audio"):
        await detector.turn_complete(b"", "")
    with pytest.raises(ProviderError, match="before prepare"):
        await SmartTurnDetector(SmartTurnConfig()).turn_complete(b"\0\0" * 16000, "")


async def test_without_the_fetched_model_it_says_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEFLOW_CACHE", str(tmp_path))
    with pytest.raises(ProviderUnavailable, match="fetch it once with `voiceflow smart-turn fetch`"):
        await SmartTurnDetector(SmartTurnConfig()).prepare()


async def test_a_corrupt_cached_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_file: Path
) -> None:
    data = bytearray(model_file.read_bytes())
    data[5000] ^= 0xFF
    (tmp_path / SMART_TURN_V32.name).write_bytes(data)
    monkeypatch.setenv("VOICEFLOW_CACHE", str(tmp_path))
    with pytest.raises(ProviderUnavailable, match="refusing to load it; fetch it again"):
        await SmartTurnDetector(SmartTurnConfig()).prepare()


async def test_a_model_path_with_another_sha256_is_refused(model_file: Path) -> None:
    config = SmartTurnConfig(model_path=model_file, sha256="0" * 64)
    with pytest.raises(ProviderUnavailable, match="expected 0000000000"):
        await SmartTurnDetector(config).prepare()


async def test_a_model_path_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not a model" * 100)
    with pytest.raises(ProviderUnavailable, match="cannot load .* as an ONNX model"):
        await SmartTurnDetector(SmartTurnConfig(model_path=junk)).prepare()


async def test_a_model_path_to_another_network_is_refused() -> None:
    from voiceflow.models import ensure_model_file
    from voiceflow_silero import SILERO_V6

    silero = ensure_model_file(SILERO_V6)
    with pytest.raises(ProviderUnavailable, match="expected input_features \\[batch, 80, 800\\]"):
        await SmartTurnDetector(SmartTurnConfig(model_path=silero)).prepare()


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="sha256 is only used with model_path"):
        SmartTurnConfig(sha256="0" * 64)
    with pytest.raises(ValidationError):
        SmartTurnConfig(threads=0)


def test_registered_as_the_turn_detector_smart_turn() -> None:
    info = PluginRegistry(builtin_only=True).get(ProviderKind.TURN, "smart-turn")
    assert info.cls is SmartTurnDetector and info.builtin


def test_it_imports_without_onnxruntime_and_says_what_to_install(model_file: Path) -> None:
    """The check every built-in plugin gets (tests/plugins/test_lazy_imports.py), run here because
    it needs the fetched model: prepare() looks for the file before it imports onnxruntime."""
    path = Path(__file__).resolve().parent.parent / "plugins" / "test_lazy_imports.py"
    spec = importlib.util.spec_from_file_location("voiceflow_lazy_import_check", path)
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    check.test_plugin_imports_without_its_runtime(
        "voiceflow_smart_turn", "SmartTurnDetector", "SmartTurnConfig", "smart-turn", ["onnxruntime"]
    )
