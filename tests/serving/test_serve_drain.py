"""Drain: SIGTERM to a real ``voiceflow serve`` process while calls are under way. Readiness
turns false at once and new calls are refused, calls in progress finish; after the grace the
agent finishes its sentence, says goodbye and hangs up; a second signal ends everything at once.

Signals are sent when the callers are hearing the agent's answer (timed on what the agent does)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from serve_process import ServeProcess, agent_file

from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import http_get
from voiceflow.testing.ws_caller import CallReport, Cue, WsCaller, after_reply, greeting_heard

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


async def calls_until(callers: list[WsCaller], then: Callable[[], Awaitable[None]]) -> None:
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


Deploy = Callable[[ServeProcess, str], Awaitable[None]]


def deploy_during_calls(
    tmp_path: Path, deploy: Deploy, *, grace: float, callers: int, hang_up: bool
) -> tuple[list[WsCaller], int, str]:
    """Serve, call, and run ``deploy(server, url)`` while every caller hears the answer; return
    the callers, the exit status and the server's output."""
    with ServeProcess(drain_agent(tmp_path, grace=grace)) as server:
        url = server.ws_url("load-agent")
        group = [WsCaller(url, question(), hang_up_when=after_reply if hang_up else None, max_seconds=120)
                 for _ in range(callers)]
        anyio.run(calls_until, group, lambda: deploy(server, url))
        status = server.wait()
    assert "Traceback" not in server.output, server.output[-3000:]
    return group, status, server.output


async def draining(server: ServeProcess) -> tuple[int, dict[str, Any]]:
    """Poll /readyz until it says draining; return that answer."""
    while True:
        status, body = await anyio.to_thread.run_sync(http_get, server.base_url + "/readyz")
        if body.get("draining"):
            return status, body
        await anyio.sleep(0.02)


def test_sigterm_lets_every_call_in_progress_finish_and_stops_taking_new_ones(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def deploy(server: ServeProcess, url: str) -> None:
        server.signal(signal.SIGTERM)
        seen["readyz"] = await draining(server)
        seen["late caller"] = await WsCaller(url, question(), max_seconds=10).run()

    callers, status, output = deploy_during_calls(tmp_path, deploy, grace=60, callers=3, hang_up=True)
    assert status == 0, output[-3000:]
    status, body = seen["readyz"]
    assert status == 503 and body["ready"] is False and body["agents"]["load-agent"]["calls"] == 3
    late = seen["late caller"]
    assert late.error is not None and late.error["code"] == "draining" and late.close_code == 1013
    for caller in callers:
        reply = caller.report.turns_ended("reply")[0]
        assert reply["outcome"] == "completed" and reply["heard_text"] == LONG_REPLY
        assert caller.report.hangup == {"type": "hangup", "reason": "caller hung up"}
        assert caller.report.close_code == 1000


def test_after_the_grace_the_agent_finishes_its_sentence_then_says_goodbye(tmp_path: Path) -> None:
    async def deploy(server: ServeProcess, url: str) -> None:
        server.signal(signal.SIGTERM)

    callers, status, output = deploy_during_calls(tmp_path, deploy, grace=0.2, callers=2, hang_up=False)
    assert status == 0, output[-3000:]
    for caller in callers:
        reply, goodbye = caller.report.turns_ended()[1:]
        assert reply["kind"] == "reply" and reply["outcome"] == "completed"
        assert reply["heard_text"] == LONG_REPLY  # never cut mid-word
        assert goodbye["kind"] == "goodbye" and goodbye["outcome"] == "completed"
        assert goodbye["heard_text"] == GOODBYE
        assert caller.report.hangup == {"type": "hangup", "reason": "server draining"}
        assert caller.report.close_code == 1000 and caller.report.clears == 0


def test_a_second_signal_ends_every_call_at_once(tmp_path: Path) -> None:
    async def impatient_deploy(server: ServeProcess, url: str) -> None:
        server.signal(signal.SIGTERM)
        await draining(server)
        server.signal(signal.SIGTERM)

    callers, status, output = deploy_during_calls(tmp_path, impatient_deploy, grace=60, callers=2, hang_up=False)
    assert status == 128 + signal.SIGTERM, output[-3000:]
    for caller in callers:
        replies = caller.report.turns_ended("reply")
        assert not replies or replies[0]["outcome"] != "completed"
        assert caller.report.hangup is not None and caller.report.hangup["reason"].startswith("cut off")
        assert caller.report.close_code == 1000
