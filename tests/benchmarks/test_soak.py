"""The soak benchmark (benchmarks/soak.py) keeps working: a short soak against a real
``voiceflow serve``, and the parts whose mistakes a soak would not show by itself: where a line's
speech ends, when the caller said it, and which calls count as dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from voiceflow.testing.ws_caller import CallReport, WsCaller

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import soak  # noqa: E402
from soak_caller import RATE, RECORDING, Dialogue, Recording, classify, load_recording, turns_of  # noqa: E402

FRAME_BYTES = 640


def test_a_short_soak_against_a_real_server_meets_its_targets() -> None:
    """Three callers for six seconds, one reply per call: the full path (server process, Silero,
    callers, /proc, /metrics, drain) and the verdicts. Memory cannot be judged in seconds (the
    heap is still growing into its working set), so the slope target is off here; its arithmetic
    is tested below."""
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "soak.py"), "--callers", "3", "--minutes", "0.1", "--turns", "1",
         "--ramp", "1", "--max-slope", "1e9", "--sample-seconds", "0.5"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "every target met" in out
    made = int(out.split("calls: ", 1)[1].split(" made", 1)[0])
    assert made >= 3
    assert f"{made} completed, 0 hung up by the agent, 0 dropped, 0 refused, 0 unfinished" in out
    assert f"turns: {made} replies, outcomes {{'completed': {made}}}; mouth-to-ear recorded for {made} (caller) " \
           f"and {made} (server)" in out
    assert f"server metrics: calls started {made}, ended {{'caller_hung_up': {made}.0}}" in out
    assert "exit status after SIGTERM 0" in out


def test_calls_still_going_when_the_soak_is_over_are_a_miss() -> None:
    """Calls of three replies (about 20 s) in a soak of six seconds with one second's grace: the
    soak hangs them up, counts them unfinished, and exits 1."""
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "soak.py"), "--callers", "2", "--minutes", "0.1", "--turns", "3",
         "--ramp", "1", "--grace", "1", "--max-slope", "1e9"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 made, 0 completed, 0 hung up by the agent, 0 dropped, 0 refused, 2 unfinished 1 s after the end" \
        in run.stdout
    assert "targets missed: 2 calls not over 1 s after the end" in run.stdout


def test_the_recordings_speech_ends_with_its_last_sound_not_its_rumble() -> None:
    """goforward.raw ends "…meters" with an "s" that is over at about 2.1 s; below 150 Hz it
    rumbles on until 2.37 s, which a plain level threshold takes for speech."""
    recording = load_recording(RECORDING)
    assert 2.05 <= recording.speech_end <= 2.2
    assert recording.frames == -(-len(recording.pcm) // FRAME_BYTES)


def test_a_recording_without_speech_is_refused(tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.raw"
    quiet.write_bytes(np.zeros(RATE, dtype="<i2").tobytes())
    with pytest.raises(SystemExit, match="no speech"):
        load_recording(quiet)


@pytest.mark.anyio
async def test_each_line_is_placed_on_the_frame_it_was_sent_in() -> None:
    """A stand-in agent counts the caller's frames and notes which frame each line began with;
    the dialogue's line starts must be those frames exactly (frame k carries the 20 ms that end
    at k × 20 ms). The agent answers each line with audio and a reply turn, so the caller's own
    mouth-to-ear comes out, and the server's figure is passed through."""
    full = load_recording(RECORDING)
    speech = full.pcm[int(0.6 * RATE) * 2 : int(1.0 * RATE) * 2]  # voiced from its first frame
    recording = Recording(speech, 0.4)
    first_frames: list[int] = []

    async def agent(ws: ServerConnection) -> None:
        received, replies = 0, 0
        answer_at: int | None = None
        try:
            async for message in ws:
                if isinstance(message, str):
                    kind = json.loads(message)["type"]
                    if kind == "start":
                        await ws.send(json.dumps({"type": "started", "call_id": "x"}))
                    elif kind == "hangup":
                        await ws.send(json.dumps({"type": "hangup", "reason": "caller hung up"}))
                        await ws.close(1000)
                    continue
                if message == speech[:FRAME_BYTES]:
                    first_frames.append(received)
                    answer_at = received + recording.frames - 1 + 5  # five frames after the line
                if received == 3:
                    await ws.send(json.dumps({"type": "turn", "kind": "greeting", "event": "ended",
                                              "outcome": "completed"}))
                if received == answer_at:
                    replies += 1
                    await ws.send(bytes(FRAME_BYTES))
                    await ws.send(json.dumps({"type": "turn", "kind": "reply", "event": "ended",
                                              "outcome": "completed", "mouth_to_ear_ms": 100 * replies}))
                received += 1
        except ConnectionClosed:
            pass

    async with serve(agent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        dialogue = Dialogue(3, recording)
        caller = WsCaller(f"ws://127.0.0.1:{port}", dialogue.cues(), hang_up_when=dialogue.hang_up_when,
                          max_seconds=60)
        with anyio.fail_after(60):
            report = await caller.run()

    assert len(first_frames) == 3
    assert [round(start / 0.02) + 1 for start in dialogue.line_starts] == first_frames
    assert classify(report, None) == ("completed", "")
    turns = turns_of(report, dialogue, opened=10.0)
    assert [t.server_ms for t in turns] == [100, 200, 300]
    assert all(t.outcome == "completed" and t.heard_ms is not None and t.heard_ms > 0 for t in turns)
    assert [round(t.at - 10.0, 6) for t in turns] == [round(s + 0.4, 6) for s in dialogue.line_starts]


def started() -> list[tuple[float, dict[str, object]]]:
    return [(0.01, {"type": "started", "call_id": "c"})]


@pytest.mark.parametrize(("events", "close_code", "failure", "expected"), [
    ([(1.0, {"type": "hangup", "reason": "caller hung up"})], 1000, None, "completed"),
    ([(1.0, {"type": "hangup", "reason": "goodbye"})], 1000, None, "agent_hung_up"),
    ([], 1006, None, "dropped"),  # the connection just ended
    ([(1.0, {"type": "hangup", "reason": "failed: BrokenResourceError"})], 1000, None, "dropped"),
    ([(1.0, {"type": "hangup", "reason": "cut off: server stopped"})], 1000, None, "dropped"),
    ([(1.0, {"type": "error", "code": "too_slow", "message": "stopped reading"})], 1008, None, "dropped"),
    ([(1.0, {"type": "hangup", "reason": "caller hung up"})], 1011, None, "dropped"),
    ([], None, "no end after 190 s", "dropped"),
])
def test_a_call_that_does_not_end_in_a_hang_up_is_dropped(
    events: list[tuple[float, dict[str, object]]], close_code: int | None, failure: str | None, expected: str
) -> None:
    report = CallReport(started={"type": "started"}, events=started() + events, close_code=close_code)
    status, reason = classify(report, failure)
    assert status == expected
    assert bool(reason) == (expected == "dropped")


def test_a_call_refused_before_it_started_is_refused_not_dropped() -> None:
    busy = CallReport(events=[(0.01, {"type": "error", "code": "busy", "message": "try later"})], close_code=1013)
    assert classify(busy, None) == ("refused", "busy: try later")
    assert classify(CallReport(), "ConnectionRefusedError: [Errno 111]")[0] == "refused"


def test_the_memory_slope_and_percentiles() -> None:
    growing = [(t, 150.0 + 2.0 * t / 60 + (0.3 if int(t) % 4 == 0 else -0.3)) for t in range(0, 600, 2)]
    assert soak.slope_per_minute(growing) == pytest.approx(2.0, abs=0.01)
    assert soak.slope_per_minute([(t, 150.0) for t in range(0, 600, 2)]) == pytest.approx(0.0, abs=1e-9)
    assert soak.slope_per_minute([(0.0, 1.0), (1.0, 2.0)]) != soak.slope_per_minute([(0.0, 1.0), (1.0, 2.0)])
    values = [float(v) for v in range(1, 101)]
    assert (soak.percentile(values, 0.5), soak.percentile(values, 0.95), soak.percentile(values, 0.99)) == (50, 95, 99)
