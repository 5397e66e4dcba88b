"""Load: 50 callers at once over the WebSocket audio API against a real ``voiceflow serve``
process, every one streaming, playing back and acknowledging at real time; one of them sends
garbage in the middle of its question. That one is told and hung up; the other 49 are answered
exactly as if they were alone."""

from __future__ import annotations

import statistics
from pathlib import Path

import anyio
from serve_process import ServeProcess, agent_file

from voiceflow.testing.fakes import silence, speech_like
from voiceflow.testing.served import http_get
from voiceflow.testing.ws_caller import CallReport, Cue, WsCaller, greeting_heard

CALLERS = 50
GARBAGE_CALLER = 17


def cues(index: int) -> list[Cue]:
    if index == GARBAGE_CALLER:
        return [Cue(speech_like(0.4, seed=index), when=greeting_heard), Cue(raw="{this is not json"),
                Cue(speech_like(0.4, seed=index) + silence(0.1))]
    return [Cue(speech_like(0.8, seed=index) + silence(0.1), when=greeting_heard)]


def test_fifty_callers_at_once_and_one_sends_garbage(tmp_path: Path) -> None:
    agent = agent_file(tmp_path, serving={"max_sessions": CALLERS + 10})
    with ServeProcess(agent) as server:
        url = server.ws_url("load-agent")
        reports: dict[int, CallReport] = {}

        async def call(index: int) -> None:
            reports[index] = await WsCaller(url, cues(index), max_seconds=300).run()  # a busy machine is slow, not wrong

        async def everyone() -> None:
            async with anyio.create_task_group() as tg:
                for index in range(CALLERS):
                    tg.start_soon(call, index)

        anyio.run(everyone)
        status, ready = http_get(server.base_url + "/readyz")
        assert status == 200 and ready["agents"]["load-agent"]["calls"] == 0
        server.signal()
        assert server.wait() == 0, server.output[-3000:]

    garbage = reports.pop(GARBAGE_CALLER)
    assert garbage.error is not None and garbage.error["code"] == "bad_message"
    assert garbage.close_code == 1007
    for index, report in reports.items():
        replies = report.turns_ended("reply")
        assert [r["outcome"] for r in replies] == ["completed"], (index, report.events)
        assert replies[0]["heard_text"] == "It is noon, more or less."
        assert report.of_type("transcript")[0]["text"] == "what time is it"
        assert report.hangup == {"type": "hangup", "reason": "caller hung up"} and report.close_code == 1000
        assert len(report.heard()) > 0 and report.clears == 0
    m2e = sorted(r.turns_ended("reply")[0]["mouth_to_ear_ms"] for r in reports.values())
    print(f"\nmouth-to-ear over {len(m2e)} calls: p50 {statistics.median(m2e):.0f} ms, max {m2e[-1]:.0f} ms")
    assert "Traceback" not in server.output, server.output[-3000:]
