"""The OpenAI LLM provider through the real ``openai`` SDK, against the fake OpenAI server.

Every request here crosses a real socket in the real wire format (SSE chunks, bearer auth, error
bodies), so what is tested is the SDK's behaviour as well as the provider's: streaming as tokens
arrive, closing the HTTP stream on barge-in, each fault becoming one clear, key-free
ProviderError within the chain's deadlines, and whole calls that answer (or fall back) with it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import anyio
import pytest
from pydantic import SecretStr, ValidationError

from harness import fake_agent, fake_registry, run_call
from voiceflow.clock import RealClock
from voiceflow.frames import Message
from voiceflow.plugins import PluginRegistry
from voiceflow.providers import ProviderError, ProviderKind, ProviderUnavailable
from voiceflow.runtime.chain import Chain, StageFailed
from voiceflow.testing.conformance import cancel_after_first, check_llm
from voiceflow.testing.fake_openai import FakeOpenAI, Fault
from voiceflow.testing.fakes import silence, speech_like
from voiceflow_openai import OpenAIConfig, OpenAILLM

pytestmark = pytest.mark.anyio

KEY = "sk-test-SECRET0123456789abcdefXYZ"
PROMPT = [Message("system", "You are brief."), Message("user", "Count to twenty.")]
COUNT = ("One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, "
         "fourteen, fifteen, sixteen, seventeen, eighteen, nineteen, twenty.")
FAST = {"connect": 0.5, "first_byte": 0.5, "idle": 0.5, "prepare": 5.0}


def config(server: FakeOpenAI | None = None, **fields: Any) -> OpenAIConfig:
    data: dict[str, Any] = {"provider": "openai", "api_key": KEY, "timeouts": FAST}
    if server is not None:
        data["base_url"] = server.base_url
    data.update(fields)
    return OpenAIConfig.model_validate(data)


async def prepared(cfg: OpenAIConfig) -> OpenAILLM:
    llm = OpenAILLM(cfg)
    await llm.prepare()
    return llm


async def collect(llm: OpenAILLM, messages: Sequence[Message] = PROMPT) -> tuple[list[str], list[float]]:
    start = time.perf_counter()
    deltas: list[str] = []
    stamps: list[float] = []
    async with aclosing(llm.stream(messages)) as stream:
        async for delta in stream:
            deltas.append(delta)
            stamps.append(time.perf_counter() - start)
    return deltas, stamps


async def wait_until(predicate: Any, limit: float = 2.0) -> float:
    start = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - start < limit, "condition never became true"
        await anyio.sleep(0.001)
    return time.perf_counter() - start


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(replies=[COUNT], api_key=KEY, ttfb=0.05, token_interval=0.02) as fake:
        yield fake


def test_registered_as_builtin_plugin() -> None:
    registry = PluginRegistry(builtin_only=True)
    assert registry.get(ProviderKind.LLM, "openai").cls is OpenAILLM


async def test_streams_text_as_it_arrives(server: FakeOpenAI) -> None:
    llm = await prepared(config(server, temperature=0.3, max_tokens=64, extra_body={"seed": 7}))
    try:
        deltas, stamps = await collect(llm)
    finally:
        await llm.aclose()
    assert "".join(deltas) == COUNT
    assert len(deltas) == 20 and all(deltas)  # the role-only first delta is not passed on
    assert stamps[0] < stamps[-1] / 3, f"first delta at {stamps[0]:.3f} s, last at {stamps[-1]:.3f} s"
    request = server.chat_requests[-1]
    assert request.authorization == f"Bearer {KEY}"
    assert request.model == "gpt-4o-mini" and request.stream
    assert request.messages == [m.as_dict() for m in PROMPT]
    assert request.params["temperature"] == 0.3 and request.params["max_tokens"] == 64
    assert request.params["seed"] == 7 and "top_p" not in request.params  # unset: the server's default


async def test_max_completion_tokens_for_reasoning_models(server: FakeOpenAI) -> None:
    llm = await prepared(config(server, max_tokens=3, max_tokens_parameter="max_completion_tokens"))
    try:
        deltas, _ = await collect(llm)
    finally:
        await llm.aclose()
    assert "".join(deltas) == "One, two, three,"  # cut by the server (finish_reason "length")
    assert server.chat_requests[-1].params["max_completion_tokens"] == 3
    assert "max_tokens" not in server.chat_requests[-1].params


async def test_conformance(server: FakeOpenAI) -> None:
    llm = await prepared(config(server))
    try:
        report = await check_llm(llm)
    finally:
        await llm.aclose()
    assert report.items == 20
    assert report.ttfb < 0.5 and report.cancel_latency < 0.1
    cancelled = server.chat_requests[1]
    assert cancelled.disconnected_at is not None and cancelled.chunks_sent < 20


async def test_time_to_first_token_is_the_server_s_not_the_transport_s(server: FakeOpenAI) -> None:
    """Through the SDK on a reused connection, the first word arrives within a few ms of the
    fake's 50 ms TTFB (a socket left with Nagle's algorithm on adds a ~40 ms delayed ACK)."""
    llm = await prepared(config(server))
    try:
        firsts = [(await collect(llm))[1][0] for _ in range(6)][1:]  # the first pays for the connection
    finally:
        await llm.aclose()
    firsts.sort()
    assert 0.05 <= firsts[len(firsts) // 2] < 0.05 + 0.03, firsts


async def test_barge_in_closes_the_http_stream_at_once(server: FakeOpenAI) -> None:
    server.token_interval = 0.2  # the server is mid-reply for seconds
    llm = await prepared(config(server))
    try:
        cancelled_at = (await cancel_after_first(lambda: llm.stream(PROMPT))).at
        request = server.chat_requests[-1]
        await wait_until(lambda: request.disconnected_at is not None)
    finally:
        await llm.aclose()
    assert request.disconnected_at is not None
    seen = request.disconnected_at - cancelled_at
    assert seen < 0.1, f"the server saw the disconnect {seen * 1000:.1f} ms after the cancel"
    assert request.chunks_sent <= 2 and request.finished_at is None


# --- faults: each is one clear ProviderError, within the entry's deadlines, without the key ----

FAULTS = [
    pytest.param(Fault("auth"), "the API key was refused (401)", id="auth"),
    pytest.param(Fault("hang"), "no output within 0.5 s", id="hang"),
    pytest.param(Fault("slow_first_byte", seconds=3.0), "no output within 0.5 s", id="slow-first-byte"),
    pytest.param(Fault("disconnect"), "closed the connection mid-reply", id="disconnect-before-text"),
    pytest.param(Fault("malformed"), "malformed stream event", id="malformed"),
    pytest.param(Fault("error_event"), "reported an error mid-stream", id="error-event"),
    pytest.param(Fault("status", status=500), "server error 500", id="http-500"),
    pytest.param(Fault("status", status=503), "server error 503", id="http-503"),
    pytest.param(Fault("status", status=429), "rate limited or out of quota", id="http-429"),
    pytest.param(Fault("status", status=400), "request refused (400)", id="http-400"),
]


async def run_chain(llm: OpenAILLM) -> tuple[list[str], float]:
    chain = Chain("llm", [llm], RealClock())
    deltas: list[str] = []
    start = time.perf_counter()
    async with aclosing(chain.stream(lambda p: p.stream(PROMPT), nonempty=True, substantive=bool)) as stream:
        async for delta in stream:
            deltas.append(delta)
    return deltas, time.perf_counter() - start


@pytest.mark.parametrize(("fault", "expected"), FAULTS)
async def test_each_fault_is_a_clear_error_within_the_deadlines(
    server: FakeOpenAI, fault: Fault, expected: str
) -> None:
    server.fail_next(fault)
    llm = await prepared(config(server))
    try:
        with pytest.raises(StageFailed) as failed:
            await run_chain(llm)
        # The fake is free again at once: the next request is served normally.
        deltas, _ = await run_chain(llm)
    finally:
        await llm.aclose()
    text = str(failed.value)
    assert expected in text, text
    assert KEY not in text and KEY[:12] not in text  # the fake quotes it in every error body
    assert "".join(deltas) == COUNT
    request = server.chat_requests[0]
    if fault.kind in ("hang", "slow_first_byte", "malformed", "error_event"):
        # The client gave up and closed the connection; the server saw it go.
        await wait_until(lambda: request.disconnected_at is not None)


async def test_a_hang_is_ended_by_first_byte_not_the_sdk_timeout(server: FakeOpenAI) -> None:
    server.fail_next(Fault("hang"))
    llm = await prepared(config(server, timeouts={**FAST, "first_byte": 0.3}))
    try:
        with pytest.raises(StageFailed, match=r"no output within 0.3 s"):
            _, elapsed = await run_chain(llm)
    finally:
        await llm.aclose()
    request = server.chat_requests[0]
    await wait_until(lambda: request.disconnected_at is not None)
    assert request.disconnected_at is not None
    assert request.disconnected_at - request.received_at < 0.3 + 0.3


async def test_a_cut_after_text_fails_mid_stream(server: FakeOpenAI) -> None:
    server.fail_next(Fault("disconnect", after=3))
    llm = await prepared(config(server))
    try:
        with pytest.raises(StageFailed) as failed:
            await run_chain(llm)
    finally:
        await llm.aclose()
    assert failed.value.served_by == 0
    assert "mid-stream: ProviderError: openai:" in str(failed.value)
    assert "closed the connection mid-reply" in str(failed.value)


async def test_a_wrong_key_is_refused_and_never_quoted(server: FakeOpenAI) -> None:
    wrong = "sk-wrong-9876543210zyxwvutsrq"
    llm = await prepared(config(server, api_key=wrong))
    try:
        with pytest.raises(ProviderUnavailable) as refused:
            await collect(llm)
    finally:
        await llm.aclose()
    assert str(refused.value).startswith("openai: the API key was refused (401)")
    assert wrong not in str(refused.value) and refused.value.__suppress_context__


async def test_a_server_that_is_down_is_not_fatal_at_prepare() -> None:
    async with FakeOpenAI() as gone:
        url = gone.base_url
    llm = await prepared(config(base_url=url))  # building the client needs no server
    try:
        with pytest.raises(ProviderError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1 \(connection refused"):
            await collect(llm)
    finally:
        await llm.aclose()


# --- keys and settings -------------------------------------------------------------------------


async def test_the_official_api_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for unset in (None, ""):  # "": ${OPENAI_API_KEY:-} with the variable unset
        with pytest.raises(ProviderUnavailable, match="no API key: set api_key .* OPENAI_API_KEY"):
            await prepared(config(api_key=unset))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    llm = await prepared(config(api_key=None))
    assert llm._client.api_key == KEY and str(llm._client.base_url) == "https://api.openai.com/v1/"
    await llm.aclose()


async def test_the_openai_key_is_not_sent_to_other_servers(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.api_key = "no-key-needed"  # a local server that checks nothing accepts the placeholder
    llm = await prepared(config(server, api_key=None))
    try:
        deltas, _ = await collect(llm)
    finally:
        await llm.aclose()
    assert "".join(deltas) == COUNT
    assert server.chat_requests[-1].authorization == "Bearer no-key-needed"


@pytest.mark.parametrize(("fields", "message"), [
    ({"base_url": "ftp://example.com/v1"}, "http:// or https:// URL"),
    ({"base_url": "http://user:pw@example.com/v1"}, "must not hold a user or password"),
    ({"base_url": "http://example.com/v1?key=1"}, "must not have a query"),
    ({"base_url": "http://example.com:99999/v1"}, "bad port"),
    ({"extra_body": {"stream": False}}, "may not set stream"),
    ({"temperature": 2.5}, "less than or equal to 2"),
    ({"max_tokens": 10**9}, "less than or equal to 128000"),
])
def test_config_refuses_mistakes(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**fields)


def test_config_normalises_the_base_url() -> None:
    cfg = config(base_url="http://127.0.0.1:8000/v1/")
    assert cfg.endpoint == "http://127.0.0.1:8000/v1" and not cfg.is_official
    assert config().is_official and isinstance(config().api_key, SecretStr)


# --- whole calls on the virtual clock -------------------------------------------------------

CALLER = silence(0.3) + speech_like(1.0) + silence(3.0)
ANSWER = "It is noon, more or less."


def entry(fake: FakeOpenAI, **fields: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": fake.base_url, "api_key": KEY, "timeouts": FAST, **fields}


async def call_with(llm: list[dict[str, Any]]) -> Any:
    reg = fake_registry()  # the built-ins (openai among them) and the scripted providers
    agent = fake_agent(reg, llm=llm)
    with anyio.fail_after(30):
        result, _, pool = await run_call(agent, reg, CALLER)
    await pool.aclose()
    replies = [t for t in result.timeline.turns if t.kind == "reply"]
    assert replies, result.timeline.as_dict()
    return replies[0]


async def test_a_whole_call_answers_through_openai() -> None:
    async with FakeOpenAI(replies=[ANSWER], api_key=KEY, ttfb=0.2) as fake:
        turn = await call_with([entry(fake)])
    assert turn.outcome == "completed" and turn.heard_text == ANSWER, turn.as_dict()
    assert turn.providers.get("llm") in (None, "openai")
    request = fake.chat_requests[0]
    assert request.messages[0]["role"] == "system" and request.messages[-1] == {
        "role": "user", "content": "what time is it"}
    # TTFB through the fake: at least its 0.2 s, on the call's (virtual) clock.
    assert 0.2 <= turn.marks["llm_first_token"] - turn.marks["llm_request"] < 1.0
    assert any(r.path == "/v1/models" for r in fake.requests)  # warm(): the connection opened early


async def test_a_whole_call_falls_back_from_a_refused_key() -> None:
    async with FakeOpenAI(replies=[ANSWER], api_key=KEY) as fake:
        turn = await call_with([entry(fake, api_key="sk-revoked-000000000000000"), entry(fake)])
    assert turn.outcome == "completed" and turn.heard_text == ANSWER, turn.as_dict()
    assert any("the API key was refused (401)" in f for f in turn.fallbacks), turn.fallbacks
    assert not any("sk-revoked" in f for f in turn.fallbacks)


async def test_a_whole_call_goes_on_after_a_mid_stream_disconnect() -> None:
    faults = {"flaky-model": Fault("disconnect", after=2)}
    async with FakeOpenAI(replies=[ANSWER], api_key=KEY, faults_by_model=faults) as fake:
        turn = await call_with([entry(fake, model="flaky-model"), entry(fake)])
    assert turn.outcome == "completed", turn.as_dict()
    assert turn.heard_text.startswith("It is "), turn.as_dict()
    assert any("closed the connection mid-reply" in f for f in turn.fallbacks), turn.fallbacks
    # The second entry was asked to continue what the first had written.
    follow_up = fake.chat_requests[-1]
    assert follow_up.model == "gpt-4o-mini"
    assert {"role": "assistant", "content": "It is"} in follow_up.messages


async def test_a_whole_call_without_a_key_starts_on_the_next_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keyless = {"provider": "openai", "api_key": "", "timeouts": FAST}  # ${OPENAI_API_KEY:-}, unset
    turn = await call_with([keyless, {"provider": "scripted-llm", "replies": [ANSWER]}])
    assert turn.outcome == "completed" and turn.heard_text == ANSWER, turn.as_dict()
