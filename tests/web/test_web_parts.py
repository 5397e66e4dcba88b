"""The browser transport's parts without a browser: its messages, the playback ledger, the
microphone's conversion, the paced agent track, and the page and signalling socket on a real
server (refusals, broken offers, the access token)."""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness import fake_agent
from voiceflow.clock import current_clock
from voiceflow.frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import OutFrame
from voiceflow.testing import fakes
from voiceflow.testing.served import served_agents
from voiceflow_web.agent_track import AgentTrack
from voiceflow_web.caller_audio import CallerAudio
from voiceflow_web.playout import RTP_PER_FRAME, PlayoutLedger
from voiceflow_web.protocol import (
    Anchor,
    Hello,
    Offer,
    Played,
    ProtocolError,
    parse_page,
    parse_signal,
    session_event,
)

pytestmark = pytest.mark.anyio


# --- messages -----------------------------------------------------------------------------------


def test_page_messages_parse_into_types_and_bad_ones_are_refused() -> None:
    assert parse_page('{"type":"hello","playout":"rtp"}', 1000) == Hello(True)
    assert parse_page('{"type":"hello"}', 1000) == Hello(False)
    assert parse_page('{"type":"anchor","rtp":4294967295}', 1000) == Anchor(4294967295)
    assert parse_page('{"type":"played","rtp":7,"age_ms":12.5}', 1000) == Played(7, 0.0125)
    assert parse_signal('{"type":"offer","sdp":"v=0\\r\\n"}', 1000) == Offer("v=0\r\n")
    for bad in ('[1]', 'nope', '{"type":"anchor","rtp":-1}', '{"type":"anchor","rtp":true}',
                '{"type":"played","rtp":1,"age_ms":"soon"}', '{"type":"dance"}'):
        with pytest.raises(ProtocolError) as refused:
            parse_page(bad, 1000)
        assert refused.value.code == "bad_message"
    with pytest.raises(ProtocolError) as refused:
        parse_signal('{"type":"offer","sdp":"' + "x" * 100 + '"}', 50)
    assert refused.value.code == "too_big" and refused.value.close == 1009


def test_session_events_take_the_websocket_apis_shapes() -> None:
    ended = session_event("turn_ended", {"turn": 1, "kind": "reply", "outcome": "interrupted", "agent_text": "a b",
                                         "heard_text": "a…", "mouth_to_ear": 0.6123})
    assert json.loads(ended or "") == {"type": "turn", "event": "ended", "turn": 1, "kind": "reply",
                                       "outcome": "interrupted", "agent_text": "a b", "heard_text": "a…",
                                       "mouth_to_ear_ms": 612}
    assert json.loads(session_event("transcript", {"turn": 1, "text": "hi"}) or "") == {
        "type": "transcript", "turn": 1, "text": "hi"}
    assert session_event("greeting_done", {}) is None


# --- the playback ledger ------------------------------------------------------------------------


def test_reports_of_played_rtp_timestamps_acknowledge_marks_up_to_the_frame_played() -> None:
    ledger = PlayoutLedger()
    heard: list[tuple[object, float]] = []
    ledger.on_played(lambda mark, t: heard.append((mark, t)))
    for i in range(10):
        ledger.send(f"m{i}" if i >= 2 else None, 100 + i * FRAME_SECONDS)  # two frames of silence first
    anchor = 2**32 - 3 * RTP_PER_FRAME  # the timestamps wrap around during the call
    ledger.report(anchor + 4 * RTP_PER_FRAME, 200.0)
    assert heard == []  # no anchor yet: nothing can be named
    ledger.anchor(anchor)
    ledger.report((anchor + 4 * RTP_PER_FRAME + 5) % 2**32, 200.0)
    assert [mark for mark, _ in heard] == ["m2", "m3", "m4"]
    assert [round(t, 3) for _, t in heard] == [199.96, 199.98, 200.0]
    ledger.report((anchor + 3 * RTP_PER_FRAME) % 2**32, 201.0)  # late, out of order: nothing new
    ledger.report((anchor + 50 * RTP_PER_FRAME) % 2**32, 201.0)  # never sent: a wrong anchor
    assert len(heard) == 3
    ledger.report((anchor + 9 * RTP_PER_FRAME) % 2**32, 202.0)
    assert [mark for mark, _ in heard][3:] == ["m5", "m6", "m7", "m8", "m9"]


def test_a_page_that_cannot_report_playback_hears_each_frame_as_it_is_sent() -> None:
    ledger = PlayoutLedger()
    ledger.reported = False
    heard: list[tuple[object, float]] = []
    ledger.on_played(lambda mark, t: heard.append((mark, t)))
    ledger.send("a", 5.0)
    ledger.send(None, 5.02)
    assert heard == [("a", 5.0)] and ledger.sent == 2


# --- the microphone -----------------------------------------------------------------------------


def tone(hz: float, seconds: float, rate: int = 48_000, level: float = 0.5) -> np.ndarray[Any, Any]:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")


def stereo_packets(mono: np.ndarray[Any, Any], per_packet: int = 960) -> list[bytes]:
    both = np.repeat(mono, 2)  # interleaved L R
    return [both[i : i + 2 * per_packet].tobytes() for i in range(0, len(both), 2 * per_packet)]


def rms(frames: list[AudioFrame]) -> float:
    samples = np.frombuffer(b"".join(f.pcm for f in frames), dtype="<i2").astype(np.float64) / 32768
    return float(np.sqrt(np.mean(samples**2)))


def test_browser_audio_becomes_20ms_frames_at_16khz_filtered_and_stamped_as_it_arrives() -> None:
    voice, audio = CallerAudio(), CallerAudio()
    frames: list[AudioFrame] = []
    above: list[AudioFrame] = []
    for i, (a, b) in enumerate(zip(stereo_packets(tone(440, 1.0)), stereo_packets(tone(11_000, 1.0)), strict=True)):
        frames += voice.frames(a, 48_000, 2, 10.0 + (i + 1) * FRAME_SECONDS)
        above += audio.frames(b, 48_000, 2, 10.0 + (i + 1) * FRAME_SECONDS)
    assert all(len(f.pcm) == 2 * FRAME_SAMPLES for f in frames)
    assert len(frames) >= 48  # a low-delay filter: at most a frame held back
    assert abs(rms(frames[5:]) - 0.5 / math.sqrt(2)) < 0.02  # the voice band passes whole
    assert rms(above[5:]) < 0.01  # 11 kHz cannot exist at 16 kHz: filtered, not folded into the voice
    times = [f.t for f in frames]
    assert all(b - a >= FRAME_SECONDS - 1e-9 for a, b in zip(times, times[1:], strict=False))
    assert all(f.t + f.duration <= 10.0 + 1.0 + 1e-9 for f in frames)  # never after it arrived


# --- the agent's track --------------------------------------------------------------------------


async def test_the_agent_track_keeps_real_time_and_a_flush_drops_what_is_queued() -> None:
    ledger = PlayoutLedger()
    ledger.reported = False
    played: list[object] = []
    ledger.on_played(lambda mark, t: played.append(mark))
    track = AgentTrack(current_clock(), ledger, buffer_frames=4)
    pcm = (np.full(FRAME_SAMPLES, 1000, dtype="<i2")).tobytes()
    for i in range(4):
        await track.play(OutFrame(AudioFrame(pcm), f"m{i}"))
    with anyio.move_on_after(0.1):
        await track.play(OutFrame(AudioFrame(pcm), "m4"))
        pytest.fail("a full buffer must hold the voice back")
    track.open()
    start = anyio.current_time()
    first = await track.recv()
    second = await track.recv()
    assert anyio.current_time() - start >= FRAME_SECONDS * 0.9  # the second frame waited its turn
    assert (first.pts, second.pts, first.sample_rate) == (0, FRAME_SAMPLES, SAMPLE_RATE)
    assert played == ["m0", "m1"]
    track.pause()  # the caller starts talking: silence goes out, the queue is kept
    held = await track.recv()
    assert not np.frombuffer(bytes(held.planes[0]), dtype="<i2")[:FRAME_SAMPLES].any()
    assert played == ["m0", "m1"]
    track.resume()  # a backchannel: the voice plays on from where it stopped
    await track.recv()
    assert played == ["m0", "m1", "m2"]
    track.flush()  # barge-in: m3 never leaves
    fourth = await track.recv()
    assert not np.frombuffer(bytes(fourth.planes[0]), dtype="<i2")[:FRAME_SAMPLES].any()  # silence
    assert played == ["m0", "m1", "m2"] and ledger.sent == 5
    track.stop()


# --- the page and the signalling socket on a real server ---------------------------------------


def web_agent(registry: PluginRegistry, **overrides: Any) -> Any:
    return fake_agent(registry, name="web-parts", transport={"provider": "web"}, **overrides)


async def first_word(url: str, first: str) -> tuple[dict[str, Any], int | None]:
    async with connect(url) as ws:
        try:
            await ws.send(first)
        except ConnectionClosed:
            pass
        reply = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        return reply, ws.close_code


async def test_the_page_is_served_with_its_scripts_and_broken_or_refused_calls_are_told_why() -> None:
    registry = PluginRegistry(plugins=[fakes])
    config = web_agent(registry, serving={"max_sessions": 1, "idle_timeout": 2})
    async with served_agents([config], registry) as server:
        base = f"{server.base_url}/agents/{config.name}"
        page = await anyio.to_thread.run_sync(_fetch, base + "/")
        assert '"agent": "web-parts"' in page and 'src="page.js"' in page
        for script in ("page.js", "level-meter.js", "rtp-anchor.js"):
            assert len(await anyio.to_thread.run_sync(_fetch, f"{base}/{script}")) > 200
        url = server.ws_url(config.name, "/call")
        reply, code = await first_word(url, '{"type":"offer","sdp":"v=0\\r\\no=- 0 0 IN IP4 0.0.0.0\\r\\n"}')
        assert reply["type"] == "error" and reply["code"] == "bad_offer" and code == 1007
        reply, code = await first_word(url, '{"type":"hangup"}')
        assert reply["code"] == "bad_message" and code == 1007
        async with connect(url):  # holds the only place while it says nothing
            await anyio.sleep(0.2)
            reply, code = await first_word(url, "{}")
            assert reply["code"] == "busy" and reply["retry_after"] > 0 and code == 1013


async def test_with_an_access_token_the_page_is_open_but_a_call_needs_the_token() -> None:
    registry = PluginRegistry(plugins=[fakes])
    config = web_agent(registry)
    async with served_agents([config], registry, token="s3cret") as server:
        base = f"{server.base_url}/agents/{config.name}"
        assert "page.js" in await anyio.to_thread.run_sync(_fetch, base + "/")
        url = server.ws_url(config.name, "/call")
        with pytest.raises(Exception, match="403"):
            async with connect(url):
                pass
        reply, code = await first_word(url + "?access_token=s3cret", '{"type":"hangup"}')
        assert reply["code"] == "bad_message"  # past the guard: the protocol's own answer


def _fetch(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
