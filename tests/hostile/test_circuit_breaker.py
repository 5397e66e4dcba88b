"""A provider that keeps failing is skipped by every call of the process, then probed again."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from test_fault_matrix import FAST, make_agent, registry

import voiceflow.runtime.session as session_module
from harness import fake_agent, run_call
from voiceflow.config.base import CircuitBreaker as CircuitSettings
from voiceflow.runtime.breaker import Breaker, CircuitState
from voiceflow.runtime.chain import AttemptRecord
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.recognizer import Recognizer
from voiceflow.testing.fake_deepgram import FakeDeepgram, Fault
from voiceflow.testing.fakes import silence, speech_like

pytestmark = pytest.mark.anyio

TWO_QUESTIONS = silence(0.3) + speech_like(1.0) + silence(3.0) + speech_like(1.0, seed=2) + silence(3.0)
ONE_QUESTION = silence(0.3) + speech_like(1.0) + silence(3.0)


async def test_a_dead_voice_is_skipped_after_repeated_failures_and_probed_after_the_reset() -> None:
    reg = registry()
    pool = ProviderPool(reg)
    agent = make_agent(reg, "breaker", "tts", "hang_first_byte", fallback=True)
    agent = agent.model_copy(update={"tts": [
        agent.tts[0].model_copy(update={"circuit": agent.tts[0].circuit.model_copy(update={"reset_after": 1.0})}),
        agent.tts[1],
    ]})

    def skipped(turn: object) -> bool:
        return any("circuit open" in f for f in turn.fallbacks)  # type: ignore[attr-defined]

    def waited(turn: object) -> bool:
        return any("no output within" in f for f in turn.fallbacks)  # type: ignore[attr-defined]

    with anyio.fail_after(60):
        first, _, _ = await run_call(agent, reg, TWO_QUESTIONS, pool=pool)
        # Greeting and two replies each waited out the dead voice's deadline: that opens it.
        assert [waited(t) for t in first.timeline.turns] == [True, True, True]
        second, _, _ = await run_call(agent, reg, TWO_QUESTIONS, pool=pool)
        # The next call does not wait for it at all: every line goes straight to the backup.
        assert all(skipped(t) and not waited(t) for t in second.timeline.turns), second.timeline.as_dict()
        assert all(t.outcome == "completed" for t in second.timeline.turns)
        await anyio.sleep(1.1)  # past reset_after: one request probes it (and fails again)
        third, _, _ = await run_call(agent, reg, TWO_QUESTIONS, pool=pool)
        assert waited(third.timeline.turns[0]) and skipped(third.timeline.turns[1])


# --- speech recognition -----------------------------------------------------------------------

STT_CIRCUIT = {"failures": 2, "reset_after": 600}  # never reached by waiting: see reset_elapsed()
FALLBACK_STT = {"provider": "scripted-stt", "lines": ["what time is it"] * 20, "timeouts": FAST}


def recognizers(monkeypatch: pytest.MonkeyPatch, pool: ProviderPool) -> list[list[AttemptRecord]]:
    """Every call's attempts to open an STT stream, one list per call, in order."""
    calls: list[list[AttemptRecord]] = []

    def recognizer(providers: Any, **options: Any) -> Recognizer:
        assert options.get("breaker") == pool.breaker  # the session hands over the pool's breakers
        created = Recognizer(providers, **options)
        calls.append([])
        created.observers.append(calls[-1].append)
        return created

    monkeypatch.setattr(session_module, "Recognizer", recognizer)
    return calls


def breaker_of(pool: ProviderPool, name: str) -> Breaker:
    return pool.breaker(next(p for p in pool.instances() if p.name == name))


def reset_elapsed(breaker: Breaker) -> None:
    """As if ``reset_after`` had passed since the circuit opened (no wall-clock wait in a test)."""
    breaker.opened_at -= breaker.settings.reset_after


def outcome(attempts: list[AttemptRecord], name: str) -> str:
    """What became of ``name`` when the call opened its stream: opened, waited (a deadline
    passed, or another failure), skipped (circuit open) or untried."""
    mine = [a for a in attempts if a.provider == name]
    if not mine:
        return "untried"
    if mine[0].error is None:
        return "opened"
    return "skipped" if mine[0].error.startswith("skipped: circuit open") else "waited"


async def sequential_calls(agent: Any, reg: Any, pool: ProviderPool, count: int) -> list[Any]:
    results = []
    with anyio.fail_after(60 * count):  # "nothing hangs": generous for a busy 2-core machine
        for _ in range(count):
            result, _, _ = await run_call(agent, reg, ONE_QUESTION, pool=pool)
            results.append(result)
    return results


def answered(result: Any) -> str:
    replies = [t for t in result.timeline.turns if t.kind == "reply"]
    assert replies and replies[0].outcome == "completed", result.timeline.as_dict()
    return str(replies[0].user_text)


async def test_a_recogniser_that_hangs_as_it_opens_is_skipped_by_later_calls_then_probed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry()
    pool = ProviderPool(reg)
    calls = recognizers(monkeypatch, pool)
    dead = {"provider": "faulty-stt", "fault": "hang_open", "timeouts": FAST, "circuit": STT_CIRCUIT}
    agent = fake_agent(reg, stt=[dead, FALLBACK_STT])

    results = await sequential_calls(agent, reg, pool, 3)
    # The first two calls wait out the dead recogniser's connect deadline, which opens its
    # circuit; the third goes straight to the fallback. Every call is answered.
    assert [outcome(c, "faulty-stt") for c in calls] == ["waited", "waited", "skipped"], calls
    assert all(a.error == "open stream: no answer within 0.4 s" for a in calls[0] if a.provider == "faulty-stt")
    assert [outcome(c, "scripted-stt") for c in calls] == ["opened"] * 3
    assert [answered(r) for r in results] == ["what time is it"] * 3
    # Each call's timeline names what happened to its recogniser before any turn.
    notes = [r.timeline.as_dict()["notes"] for r in results]
    assert notes[0] == ["stt/faulty-stt: open stream: no answer within 0.4 s"], notes
    assert len(notes[2]) == 1 and "circuit" in notes[2][0], notes
    breaker = breaker_of(pool, "faulty-stt")
    assert breaker.state is CircuitState.OPEN

    reset_elapsed(breaker)
    results += await sequential_calls(agent, reg, pool, 2)
    # After reset_after one call probes it (and pays the deadline once more: it is still dead),
    # which opens the circuit again for the next.
    assert [outcome(c, "faulty-stt") for c in calls[3:]] == ["waited", "skipped"], calls
    assert [answered(r) for r in results[3:]] == ["what time is it"] * 2


async def test_a_probe_that_opens_closes_the_recogniser_s_circuit(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry()  # deepgram is a built-in
    pool = ProviderPool(reg)
    calls = recognizers(monkeypatch, pool)
    async with FakeDeepgram(utterances=["deepgram heard this"]) as fake:
        fake.fail_next(Fault("hang"), Fault("hang"))  # the first two sockets: the upgrade never answers
        deepgram = {"provider": "deepgram", "api_key": fake.api_key, "websocket_url": fake.websocket_url,
                    "timeouts": FAST, "circuit": STT_CIRCUIT}
        agent = fake_agent(reg, stt=[deepgram, FALLBACK_STT])
        results = await sequential_calls(agent, reg, pool, 3)
        assert [outcome(c, "deepgram") for c in calls] == ["waited", "waited", "skipped"], calls
        assert len(fake.listen_sessions) == 2  # the skipping call never knocked
        breaker = breaker_of(pool, "deepgram")
        reset_elapsed(breaker)
        results += await sequential_calls(agent, reg, pool, 2)
        await pool.aclose()
    # The probe found it working again: it heard that call, and the next one uses it at once.
    assert [outcome(c, "deepgram") for c in calls[3:]] == ["opened", "opened"], calls
    assert breaker.state is CircuitState.CLOSED and breaker.failures == 0
    assert [answered(r) for r in results] == ["what time is it"] * 3 + ["deepgram heard this"] * 2


async def test_a_probe_that_never_reports_is_presumed_lost_after_reset_after() -> None:
    """A probe whose call hung up (or was barged in on) before it answered gives no verdict: the
    provider must not stay skipped for the life of the process."""
    breaker = Breaker("voice", CircuitSettings(failures=1, reset_after=600))
    breaker.failed()
    assert breaker.state is CircuitState.OPEN and not breaker.allows()
    reset_elapsed(breaker)
    assert breaker.allows()  # the probe, which is then lost...
    assert not breaker.allows()  # (one probe at a time)
    breaker._probe_started -= breaker.settings.reset_after  # ...and reset_after passes
    assert breaker.allows() and breaker.state is CircuitState.HALF_OPEN
    breaker.succeeded()
    assert breaker.state is CircuitState.CLOSED and breaker.allows()
