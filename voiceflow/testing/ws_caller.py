"""A caller for the WebSocket audio API that behaves like a real client: it streams its voice at
real time (silence between lines, as an open microphone does), plays the agent back at real time
into a buffer, acknowledges each mark only once the audio before it has played, drops what is
unplayed on ``clear``, holds it on ``pause`` and plays on from there on ``resume`` (if it says it
``pauses``), and records everything it saw.

Lines can wait for the agent (:attr:`Cue.after_agent_audio`), so a test says "interrupt half a
second into the answer" wherever the answer starts on a busy machine, instead of at a clock time.

From a shell::

    python -m voiceflow.testing.ws_caller ws://127.0.0.1:8000/agents/NAME/ws caller.wav

plays ``caller.wav`` once the greeting has been heard, hangs up after the reply, and prints the
events and the agent audio's length.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voiceflow.tasks import create_task_group

FRAME_SECONDS = 0.02


@dataclass(frozen=True)
class Cue:
    """Something the caller sends: ``pcm`` (at the call's rate) spoken in real time, or ``raw``
    sent as one message as is (to misbehave). With ``after_agent_audio`` the caller first waits,
    sending silence, until the agent has been audible that long since the previous cue ended."""

    pcm: bytes = b""
    after_agent_audio: float | None = None
    raw: bytes | str | None = None
    when: Callable[[CallReport], bool] | None = None
    """Wait (sending silence) until this is true of what the caller has seen so far."""


@dataclass
class _Segment:
    start: float
    pcm: bytes


@dataclass
class CallReport:
    """What the caller saw. Times are seconds since the socket opened."""

    started: dict[str, Any] | None = None
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    segments: list[_Segment] = field(default_factory=list)
    acknowledged: int = 0
    clears: int = 0
    pauses: list[tuple[float, float | None]] = field(default_factory=list)
    """Playback held: (from, until), ``until`` None if a ``clear`` (or the end) came first."""
    close_code: int | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for _, event in self.events if event.get("type") == kind]

    def turns_ended(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.of_type("turn") if e["event"] == "ended" and kind in (None, e["kind"])]

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[0] if errors else None

    @property
    def hangup(self) -> dict[str, Any] | None:
        hangups = self.of_type("hangup")
        return hangups[0] if hangups else None

    def heard(self) -> bytes:
        """The agent's audio as it was played (dropped audio excluded)."""
        return b"".join(segment.pcm for segment in self.segments)


HangUpWhen = Callable[[CallReport], bool]


def greeting_heard(report: CallReport) -> bool:
    """The greeting has ended (heard to its end, or interrupted)."""
    return bool(report.turns_ended("greeting"))


def after_reply(report: CallReport) -> bool:
    """Hang up once a reply to the caller has been heard to its end (completed)."""
    return any(turn["outcome"] == "completed" for turn in report.turns_ended("reply"))


class WsCaller:
    """One call. ``await WsCaller(url, cues).run()`` returns its :class:`CallReport`."""

    def __init__(
        self,
        url: str,
        cues: list[Cue],
        *,
        sample_rate: int = 16_000,
        token: str | None = None,
        acknowledges_marks: bool = True,
        hang_up_when: HangUpWhen | None = after_reply,
        max_seconds: float = 60.0,
        receives_keys: bool = False,
        pauses: bool = False,
    ) -> None:
        self.url, self.cues, self.rate, self.token = url, cues, sample_rate, token
        self.receives_keys, self.pauses = receives_keys, pauses
        self.acks, self.hang_up_when, self.max_seconds = acknowledges_marks, hang_up_when, max_seconds
        self.report = CallReport()
        self._t0 = 0.0
        self._play_end = 0.0
        self._marks: list[tuple[float, int]] = []
        self._held: list[tuple[float, bytes | int]] = []
        """While paused: audio (bytes) and marks (ids) not yet played, at their offsets from the
        moment playback goes on."""
        self._held_until = 0.0
        self._paused_at: float | None = None
        self._new_mark = anyio.Event()
        self._closed = anyio.Event()

    async def run(self) -> CallReport:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        async with connect(self.url, additional_headers=headers, max_size=None) as ws:
            self._t0 = anyio.current_time()
            try:
                await ws.send(json.dumps({
                    "type": "start", "format": {"encoding": "pcm16", "sample_rate": self.rate, "channels": 1},
                    "acknowledges_marks": self.acks,
                    **({"receives_keys": True} if self.receives_keys else {}),
                    **({"pauses": True} if self.pauses else {}),
                }))
            except ConnectionClosed:
                pass  # refused (busy, draining): the reason is among the messages received
            async with create_task_group() as tg:
                tg.start_soon(self._receive, ws, tg.cancel_scope)
                tg.start_soon(self._acknowledge, ws)
                with anyio.move_on_after(self.max_seconds):
                    await self._speak(ws)
                await self._closed.wait()
                tg.cancel_scope.cancel()
            self.report.close_code = ws.close_code
        return self.report

    # --- the caller's side ----------------------------------------------------------------------

    async def _speak(self, ws: ClientConnection) -> None:
        frame = int(self.rate * FRAME_SECONDS) * 2
        silence = bytes(frame)
        tick = anyio.current_time()
        try:
            for cue in self.cues:
                if cue.after_agent_audio is not None:
                    since = self._now()
                    while not self._agent_audible_for(since, cue.after_agent_audio) and not self._closed.is_set():
                        tick = await self._send_at(ws, silence, tick)
                while cue.when is not None and not cue.when(self.report) and not self._closed.is_set():
                    tick = await self._send_at(ws, silence, tick)
                if cue.raw is not None:
                    await ws.send(cue.raw)
                for start in range(0, len(cue.pcm), frame):
                    tick = await self._send_at(ws, cue.pcm[start : start + frame], tick)
            while not self._closed.is_set() and not (self.hang_up_when and self.hang_up_when(self.report)):
                tick = await self._send_at(ws, silence, tick)
            if not self._closed.is_set():
                await ws.send(json.dumps({"type": "hangup"}))
            await self._closed.wait()
        except ConnectionClosed:
            self._closed.set()

    async def _send_at(self, ws: ClientConnection, pcm: bytes, tick: float) -> float:
        """Send one frame when its time comes (a microphone delivers audio as it is spoken)."""
        await anyio.sleep(max(0.0, tick - anyio.current_time()))
        await ws.send(pcm)
        return tick + FRAME_SECONDS

    def _agent_audible_for(self, since: float, seconds: float) -> bool:
        now = self._now()
        starts = [s.start for s in self.report.segments if s.start + len(s.pcm) / (2 * self.rate) > since]
        return bool(starts) and now >= max(min(starts), since) + seconds

    # --- the player's side ----------------------------------------------------------------------

    async def _receive(self, ws: ClientConnection, scope: anyio.CancelScope) -> None:
        try:
            async for data in ws:
                now = self._now()
                if isinstance(data, bytes) and self._paused_at is not None:
                    self._held.append((self._held_until, data))
                    self._held_until += len(data) / (2 * self.rate)
                    continue
                if isinstance(data, bytes):
                    start = max(now, self._play_end)
                    self._play_end = start + len(data) / (2 * self.rate)
                    self.report.segments.append(_Segment(start, data))
                    continue
                event = json.loads(data)
                self.report.events.append((now, event))
                match event.get("type"):
                    case "started":
                        self.report.started = event
                    case "mark" if self._paused_at is not None:
                        self._held.append((self._held_until, event["id"]))
                    case "mark":
                        self._marks.append((max(now, self._play_end), event["id"]))
                        self._new_mark.set()
                    case "clear":
                        self._clear(now)
                    case "pause" if self._paused_at is None:
                        self._pause(now)
                    case "resume" if self._paused_at is not None:
                        self._resume(now)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()

    def _pause(self, now: float) -> None:
        """Hold playback now: what has not played waits, and so do its marks."""
        self._paused_at = now
        self.report.pauses.append((now, None))
        kept: list[_Segment] = []
        for segment in self.report.segments:
            played = max(0, int((now - segment.start) * self.rate)) * 2
            if played >= len(segment.pcm):
                kept.append(segment)
                continue
            if played:
                kept.append(_Segment(segment.start, segment.pcm[:played]))
            self._held.append((max(0.0, segment.start - now), segment.pcm[played:]))
        self.report.segments = kept
        self._held += [(due - now, mark) for due, mark in self._marks if due > now]
        self._marks = [(due, mark) for due, mark in self._marks if due <= now]
        self._held_until = max(0.0, self._play_end - now)
        self._play_end = now

    def _resume(self, now: float) -> None:
        """Play on from where it was held."""
        assert self._paused_at is not None
        self.report.pauses[-1] = (self._paused_at, now)
        self._paused_at = None
        for offset, item in sorted(self._held, key=lambda held: held[0]):
            if isinstance(item, bytes):
                self.report.segments.append(_Segment(now + offset, item))
            else:
                self._marks.append((now + offset, item))
        self._marks.sort()
        self._play_end = now + self._held_until
        self._held, self._held_until = [], 0.0
        self._new_mark.set()

    def _clear(self, now: float) -> None:
        """Stop playback now: what has not played is gone, and so are its marks (a pause ends)."""
        self._paused_at, self._held, self._held_until = None, [], 0.0
        self.report.clears += 1
        kept: list[_Segment] = []
        for segment in self.report.segments:
            if segment.start >= now:
                continue
            played = int((now - segment.start) * self.rate) * 2
            kept.append(_Segment(segment.start, segment.pcm[:played]) if played < len(segment.pcm) else segment)
        self.report.segments = kept
        self._play_end = now
        self._marks = [(due, mark) for due, mark in self._marks if due <= now]

    async def _acknowledge(self, ws: ClientConnection) -> None:
        while True:
            if not self._marks or not self.acks:
                await self._new_mark.wait()
                self._new_mark = anyio.Event()
                continue
            due, mark = self._marks[0]
            await anyio.sleep(max(0.0, due - self._now()))
            if self._marks and self._marks[0] == (due, mark):
                self._marks.pop(0)
                try:
                    await ws.send(json.dumps({"type": "mark", "id": mark}))
                except ConnectionClosed:
                    return
                self.report.acknowledged += 1

    def _now(self) -> float:
        return anyio.current_time() - self._t0


def main() -> None:
    from voiceflow.audio import read_wav

    parser = argparse.ArgumentParser(description="Call an agent over the WebSocket audio API.")
    parser.add_argument("url")
    parser.add_argument("wav", help="the caller's recording, played once the greeting has been heard")
    parser.add_argument("--rate", type=int, default=16_000)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    cues = [Cue(read_wav(args.wav, args.rate), when=greeting_heard)]
    report = anyio.run(WsCaller(args.url, cues, sample_rate=args.rate, token=args.token).run)
    for t, event in report.events:
        if event["type"] != "mark":
            print(f"{t:7.3f}  {json.dumps(event)}")
    print(f"agent audio heard: {len(report.heard()) / (2 * args.rate):.2f} s; close code {report.close_code}")


if __name__ == "__main__":
    main()
