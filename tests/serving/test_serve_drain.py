"""Drain: SIGTERM to a real ``voiceflow serve`` process while calls are under way. Readiness
turns false at once and new calls are refused, calls in progress finish; after the grace the
agent finishes its sentence, says goodbye and hangs up; a second signal ends everything at once.

Signals are sent when the callers are hearing the agent's answer (timed on what the agent does)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from serve_process import ServeProcess, agent_file

from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import http_get
from voiceflow.testing.ws_caller import CallReport, Cue, WsCaller, greeting_heard

LONG_REPLY = (
    "Here is a long answer, so that there is time to deploy in the middle of it. The weather "
    "will be sunny in the morning, cloudy around noon, and rainy by the evening."
)
GOODBYE = "We are closing for maintenance. Goodbye!"


def drain_agent(tmp_path: Path, **drain: Any) -> Path:
    return agent_file(
        tmp_path,
        llm=[{"provider": "scripted-llm", "replies": [LONG_REPLY]}],
        tts=[{"provider": "tone", "seconds_per_char": 0.03}],
        serving={"drain": {"goodbye": GOODBYE, **drain}},
    )


def hearing_the_answer(report: CallReport) -> bool:
    """The answer's audio has started playing at this caller."""
    started = [e for e in report.of_type("turn") if e["kind"] == "reply"]
    return bool(started) and bool(report.segments) and not report.turns_ended("reply")


async def calls_until(server: ServeProcess, callers: list[WsCaller], then: Any) -> None:
    """Run the callers; once every one of them is hearing the answer, run ``then``."""
    async with anyio.create_task_group() as tg:
        for caller in callers:
            tg.start_soon(caller.run)
        while not all(hearing_the_answer(c.report) for c in callers):
            await anyio.sleep(0.02)
        await anyio.sleep(0.3)  # into the answer
        await then()


def question() -> list[Cue]:
    return [Cue(speech_like(0.8) + silence(0.1), when=greeting_heard)]


async def refused(url: str) -> CallReport:
    return await WsCaller(url, question(), max_seconds=10).run()


def test_sigterm_lets_every_call_in_progress_finish_and_stops_taking_new_ones(tmp_path: Path) -> None:
    with ServeProcess(drain_agent(tmp_path, grace=60)) as server:
        url = server.ws_url("load-agent")
        callers = [WsCaller(url, question(), max_seconds=120) for _ in range(3)]
        seen: dict[str, Any] = {}

        async def deploy() -> None:
            server.signal(signal.SIGTERM)
            while True:
                status, body = await anyio.to_thread.run_sync(http_get, server.base_url + "/readyz")
                if body.get("draining"):
                    seen["readyz"] = (status, body)
                    break
                await anyio.sleep(0.02)
            seen["late caller"] = await refused(url)

        anyio.run(calls_until, server, callers, deploy)
        assert server.wait() == 0, server.output[-3000:]

    status, body = seen["readyz"]
    assert status == 503 and body["ready"] is False and body["agents"]["load-agent"]["calls"] == 3
    late = seen["late caller"]
    assert late.error is not None and late.error["code"] == "draining" and late.close_code == 1013
    for caller in callers:
        reply = caller.report.turns_ended("reply")[0]
        assert reply["outcome"] == "completed" and reply["heard_text"] == LONG_REPLY
        assert caller.report.hangup == {"type": "hangup", "reason": "caller hung up"}
        assert caller.report.close_code == 1000
    assert "Traceback" not in server.output


def test_after_the_grace_the_agent_finishes_its_sentence_then_says_goodbye(tmp_path: Path) -> None:
    with ServeProcess(drain_agent(tmp_path, grace=0.2)) as server:
        url = server.ws_url("load-agent")
        callers = [WsCaller(url, question(), hang_up_when=None, max_seconds=120) for _ in range(2)]

        async def deploy() -> None:
            server.signal(signal.SIGTERM)

        anyio.run(calls_until, server, callers, deploy)
        assert server.wait() == 0, server.output[-3000:]

    for caller in callers:
        reply, goodbye = caller.report.turns_ended()[1:]
        assert reply["kind"] == "reply" and reply["outcome"] == "completed"
        assert reply["heard_text"] == LONG_REPLY  # never cut mid-word
        assert goodbye["kind"] == "goodbye" and goodbye["outcome"] == "completed"
        assert goodbye["heard_text"] == GOODBYE
        assert caller.report.hangup == {"type": "hangup", "reason": "server draining"}
        assert caller.report.close_code == 1000 and caller.report.clears == 0
    assert "Traceback" not in server.output


def test_a_second_signal_ends_every_call_at_once(tmp_path: Path) -> None:
    with ServeProcess(drain_agent(tmp_path, grace=60)) as server:
        url = server.ws_url("load-agent")
        callers = [WsCaller(url, question(), hang_up_when=None, max_seconds=120) for _ in range(2)]

        async def impatient_deploy() -> None:
            server.signal(signal.SIGTERM)
            while not (await anyio.to_thread.run_sync(http_get, server.base_url + "/readyz"))[1].get("draining"):
                await anyio.sleep(0.02)
            server.signal(signal.SIGTERM)

        anyio.run(calls_until, server, callers, impatient_deploy)
        assert server.wait() == 128 + signal.SIGTERM, server.output[-3000:]

    for caller in callers:
        assert not caller.report.turns_ended("reply") or caller.report.turns_ended("reply")[0]["outcome"] != "completed"
        assert caller.report.hangup is not None and caller.report.hangup["reason"].startswith("cut off")
        assert caller.report.close_code == 1000
    assert "Traceback" not in server.output
