"""The fake OpenAI server speaks OpenAI's wire format, checked byte by byte with a plain HTTP client.

(tests/plugins/test_openai_llm.py drives it through the real SDK.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from voiceflow.testing.fake_openai import FakeOpenAI, Fault

KEY = "sk-fake-wire-0123456789"


def post(server: FakeOpenAI, body: dict[str, Any], key: str | None = KEY, timeout: float = 5.0) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        server.base_url + "/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read()


def events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body; every event must be exactly one data line."""
    assert raw.endswith(b"\n\n")
    blocks = raw.decode().split("\n\n")[:-1]
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks), blocks
    return [block[len("data: "):] for block in blocks]


BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}


def test_a_streamed_completion_is_openai_s_event_stream() -> None:
    with FakeOpenAI(replies=["Hello there, caller."], api_key=KEY, ttfb=0.0, token_interval=0.0) as server:
        status, content_type, raw = post(server, {**BODY, "stream_options": {"include_usage": True},
                                                  "temperature": 0.2})
    assert status == 200 and content_type.startswith("text/event-stream")
    payloads = events(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    words = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert words == ["Hello", " there,", " caller."]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    (request,) = server.requests
    assert request.model == "gpt-4o-mini" and request.messages == BODY["messages"]
    assert request.params == {"stream": True, "stream_options": {"include_usage": True}, "temperature": 0.2}
    assert request.authorized and request.chunks_sent == 3 and request.finished_at is not None


def test_a_whole_completion_models_and_refusals() -> None:
    with FakeOpenAI(replies=["One two three."], api_key=KEY, ttfb=0.0, models=["a", "b"]) as server:
        status, content_type, raw = post(server, {**BODY, "stream": False, "max_tokens": 2})
        completion = json.loads(raw)
        assert status == 200 and content_type == "application/json"
        assert completion["object"] == "chat.completion"
        assert completion["choices"][0]["message"] == {"role": "assistant", "content": "One two"}
        assert completion["choices"][0]["finish_reason"] == "length"

        listing = urllib.request.Request(server.base_url + "/models", headers={"authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(listing, timeout=5) as response:
            assert [m["id"] for m in json.loads(response.read())["data"]] == ["a", "b"]

        status, _, raw = post(server, BODY, key=None)
        assert status == 401 and json.loads(raw)["error"]["message"].startswith("You didn't provide an API key")
        status, _, raw = post(server, BODY, key="sk-other-key-42")
        error = json.loads(raw)["error"]
        assert status == 401 and error["code"] == "invalid_api_key" and "sk-other-key-42" in error["message"]
        status, _, raw = post(server, {"model": "x"})
        assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_faults_per_request_per_model_and_per_server() -> None:
    faults = {"broken": Fault("status", status=503)}
    with FakeOpenAI(api_key=KEY, ttfb=0.0, fault=Fault("status", status=500), faults_by_model=faults) as server:
        server.fail_next(Fault("status", status=429))
        assert post(server, BODY)[0] == 429  # the queued fault wins, once
        assert post(server, {**BODY, "model": "broken"})[0] == 503
        assert post(server, BODY)[0] == 500
        server.fault = None
        assert post(server, BODY)[0] == 200
    assert [r.fault for r in server.requests] == ["status", "status", "status", None]


def test_stopping_releases_a_hung_request() -> None:
    server = FakeOpenAI(api_key=KEY, fault=Fault("hang"))
    server.start()
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(_try(lambda: post(server, BODY, timeout=30))))
    worker.start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - started < 5
    assert outcome and not (isinstance(outcome[0], tuple) and outcome[0][0] == 200)


def _try(fn: Any) -> object:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the dropped connection is the expected outcome
        return exc


@pytest.mark.parametrize("blocked", ["starlette", "uvicorn"])
def test_importable_without_starlette_and_uvicorn(blocked: str) -> None:
    code = f"""
import sys
sys.modules[{blocked!r}] = None
import voiceflow.testing
from voiceflow.testing.fake_openai import FakeOpenAI, Fault
server = FakeOpenAI(fault=Fault("hang"))
try:
    server.start()
except ImportError:
    pass
else:
    raise SystemExit("started without {blocked}")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
