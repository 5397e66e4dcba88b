"""The local transport on a real PortAudio stream, in real time, against a caller at the device.

The sound card is JACK's dummy driver; the caller is two JACK clients that PortAudio lists as a
microphone and a speaker, with a capture and a playback latency (local_sound_card.py). The
microphone plays a real recording (pocketsphinx's "go forward ten meters"); the speaker records
what the agent says. The agent is scripted (energy VAD, scripted STT and LLM, a 440 Hz tone for
a voice), so what is tested is the transport: PortAudio's callbacks, resampling both ways, the
device's pacing, capture stamps and heard marks against the caller's own clock, flush on
barge-in, half duplex against an echo, and hanging up.

Nothing waits on the clock: each step waits for what the agent or the caller did. Timing checks
compare two clocks reading the same events, with margins well inside the latencies they prove
are accounted for (a transport that ignored them would be off by 150-250 ms).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import pytest
from local_sound_card import RATE, Caller

from audio_fixtures import goforward
from harness import fake_agent, fake_registry
from voiceflow.audio import split_frames
from voiceflow.config.compose import AgentConfig
from voiceflow.frames import FRAME_SECONDS, SAMPLE_RATE, AudioFrame
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.providers import CallTransport
from voiceflow.runtime.pool import ProviderPool
from voiceflow.runtime.runner import CallRunner, prepare
from voiceflow.runtime.session import CallResult
from voiceflow.testing.fakes import EnergyVAD, EnergyVADConfig
from voiceflow_local import LocalCall, LocalConfig, LocalTransport

pytestmark = pytest.mark.anyio

DEVICES = {"provider": "local", "input_device": "vf-mic", "output_device": "vf-speaker"}
SECONDS_PER_CHAR = 0.06
"""The tone voice's pace (ToneTTS's default)."""
WAIT = 60.0
"""The longest any step may take on a very busy machine (steps normally take a second or two)."""


@dataclass
class Run:
    """A call in progress through the local transport, and what the test saw of it."""

    caller: Caller
    runner: CallRunner
    call: LocalCall | None = None
    marks: list[tuple[object, float]] = field(default_factory=list)
    captured: list[AudioFrame] = field(default_factory=list)
    """Every frame of caller audio the transport handed to the session, in order."""

    def heard_turns(self) -> list[TurnTimeline]:
        """The timelines of the turns heard so far (from their marks), in order."""
        turns: list[TurnTimeline] = []
        for mark, _ in self.marks:
            turn = getattr(getattr(mark, "reply", None), "timeline", None)
            if isinstance(turn, TurnTimeline) and turn not in turns:
                turns.append(turn)
        return turns

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        with anyio.move_on_after(WAIT) as waited:
            while not condition():
                await anyio.sleep(0.02)
        if waited.cancelled_caught:
            raise AssertionError(f"waited {WAIT:.0f} s for {what}")

    def turn(self, index: int) -> TurnTimeline | None:
        turns = self.heard_turns()
        return turns[index] if index < len(turns) else None

    async def turn_over(self, index: int) -> TurnTimeline:
        """Until the ``index``-th turn the caller heard has ended, and the ear has all of it."""

        def over() -> bool:
            turn = self.turn(index)
            heard = self.caller.heard_until()
            return turn is not None and turn.outcome != "pending" and heard > max(turn.marks.values()) + 0.2

        await self.until(over, f"turn {index} to end")
        turn = self.turn(index)
        assert turn is not None
        return turn


async def talk(agent: AgentConfig, registry: PluginRegistry, caller: Caller,
               script: Callable[[Run], Awaitable[None]]) -> tuple[CallResult, Run]:
    """Serve ``agent`` on the local transport, run ``script`` against it, then hang up."""
    pool = ProviderPool(registry)
    await prepare(agent, pool)
    results: list[CallResult] = []
    run = Run(caller, CallRunner(agent, pool, on_call_done=results.append))
    assert isinstance(agent.transport, LocalConfig)
    transport = LocalTransport(agent.transport)

    async def session(call: CallTransport) -> None:
        assert isinstance(call, LocalCall)
        run.call = call
        spied = call.on_played

        def on_played(callback: Any) -> None:
            def spy(mark: object, t: float) -> None:
                run.marks.append((mark, t))
                callback(mark, t)

            spied(spy)

        call.on_played = on_played  # type: ignore[method-assign]
        frames = call.caller_audio

        async def caller_audio() -> AsyncIterator[AudioFrame]:
            async for frame in frames():
                run.captured.append(frame)
                yield frame

        call.caller_audio = caller_audio  # type: ignore[method-assign]
        await run.runner.run(call)

    with anyio.fail_after(WAIT * 3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(transport.serve, session)
            await run.until(lambda: run.runner.live == 1, "the call to start")
            await script(run)
            run.runner.hang_up_all("test over")
    await pool.aclose()
    assert len(results) == 1
    return results[0], run


def voiced_stretch(pcm: bytes) -> tuple[float, float]:
    """Where the energy VAD finds speech in a recording: (start, end) seconds from its start."""
    stream = EnergyVAD(EnergyVADConfig()).create_stream()
    frames = (AudioFrame(pcm, i * FRAME_SECONDS) for i, pcm in enumerate(split_frames(pcm)))
    edges = [edge for frame in frames if (edge := stream.process(frame)) is not None]
    return edges[0].t, edges[-1].t


def spoken_turns(result: CallResult) -> list[TurnTimeline]:
    """The call's turns but replies prepared during a pause and dropped when the caller went on."""
    return [turn for turn in result.timeline.turns if turn.outcome != "discarded"]


def dominant_hz(caller: Caller, span: tuple[float, float]) -> float:
    samples, times = caller.ear()
    piece = samples[(times >= span[0]) & (times <= span[1])]
    spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
    return float(np.argmax(spectrum) * RATE / len(piece))


def voice_of(caller: Caller, turn: TurnTimeline, until: float | None = None) -> tuple[float, float]:
    """The one stretch of voice the ear heard while ``turn`` was heard (by its own marks)."""
    end = until if until is not None else turn.marks["reply_heard"]
    spans = caller.voice(turn.marks["first_audio_out"] - 0.1, end + 0.1)
    assert len(spans) == 1, (spans, turn.as_dict())
    return spans[0]


async def test_a_conversation_through_the_sound_card(caller: Caller) -> None:
    """The greeting plays, the caller's real speech is heard and answered; marks say when the
    caller's ear heard the agent, frame stamps say when the caller's mouth spoke."""
    registry = fake_registry()
    agent = fake_agent(registry, transport=DEVICES,
                       stt=[{"provider": "scripted-stt", "lines": ["go forward ten meters"]}],
                       llm=[{"provider": "scripted-llm", "replies": ["Going forward now."]}],
                       # The recording pauses 0.22 s mid-sentence, and its audio arrives 0.15 s
                       # after it was spoken: a margin so that the pause never ends the turn.
                       turn_taking={"endpointing": {"min_silence": 0.8}})
    speech = goforward()

    async def script(run: Run) -> None:
        await run.turn_over(0)
        caller.say(speech)
        await run.turn_over(1)

    result, run = await talk(agent, registry, caller, script)
    turns = spoken_turns(result)
    assert len(turns) == 2, [(turn.kind, turn.outcome, turn.user_text) for turn in result.timeline.turns]
    greeting, reply = turns
    assert (greeting.kind, greeting.outcome, reply.kind, reply.outcome) == ("greeting", "completed", "reply", "completed")
    assert reply.user_text == "go forward ten meters"
    assert reply.heard_text == reply.agent_text == "Going forward now."
    assert result.ended_because == "test over"

    for turn in (greeting, reply):
        span = voice_of(caller, turn)
        # What the speaker played is the agent's voice, as long as its text takes to say.
        assert abs(dominant_hz(caller, span) - 440) < 5
        assert caller.voiced_seconds(span) == pytest.approx(len(turn.agent_text) * SECONDS_PER_CHAR, abs=0.06)
        # Heard means heard: the first mark is when the caller's ear got the first sample (the
        # speaker's 250 ms playback latency included), not when it was handed over; the last
        # one, when the last frame began (the frame before the end of the voice).
        assert turn.marks["first_audio_out"] == pytest.approx(span[0], abs=0.04), turn.as_dict()
        assert span[1] - 0.08 < turn.marks["reply_heard"] < span[1], (span, turn.as_dict())

    # The caller's speech is stamped when it was spoken (the microphone's 150 ms capture
    # latency included), so mouth-to-ear is what the caller experienced.
    said = caller.utterances[0]
    start, end = voiced_stretch(speech)
    before_end = len(speech) / 2 / SAMPLE_RATE - end  # each edge from the nearer end of the recording
    assert reply.marks["user_speech_start"] == pytest.approx(said.start + start, abs=0.045)
    assert reply.marks["user_speech_end"] == pytest.approx(said.end - before_end, abs=0.045)
    experienced = voice_of(caller, reply)[0] - (said.end - before_end)
    assert reply.mouth_to_ear == pytest.approx(experienced, abs=0.06)
    assert len(run.marks) > 50  # one per 20 ms frame of both turns


async def test_barge_in_stops_the_speaker_and_keeps_only_what_was_heard(make_caller: Callable[..., Caller]) -> None:
    """The caller talks over a long reply: the agent stops while they are still talking, the
    second of audio queued ahead is dropped, and the agent keeps exactly what the ear heard."""
    caller = make_caller(capture_latency=0.02)  # a laptop's (see the docs: barge-in and capture latency)
    long_reply = " ".join(["This is a long answer that goes on and on."] * 4)
    registry = fake_registry()
    agent = fake_agent(registry, transport={**DEVICES, "buffer": 1.0},
                       llm=[{"provider": "scripted-llm", "replies": [long_reply]}],
                       tts=[{"provider": "tone", "alignment": True}],
                       turn_taking={"barge_in": {"min_speech": 0.3, "pause_on_speech": False}})
    speech = goforward()

    def reply_heard_for(run: Run, seconds: float) -> bool:
        reply = run.turn(1)
        return reply is not None and time.monotonic() > reply.marks["first_audio_out"] + seconds

    async def script(run: Run) -> None:
        await run.turn_over(0)
        caller.say(speech)  # the question
        await run.until(lambda: reply_heard_for(run, 1.0), "a second of the reply")
        caller.say(speech)  # over the reply
        await run.turn_over(1)
        await run.until(lambda: caller.quiet, "the caller to finish")

    result, run = await talk(agent, registry, caller, script)
    reply = spoken_turns(result)[1]
    assert reply.outcome == "interrupted", reply.as_dict()
    interrupted = reply.marks["interrupted"]
    over_it = caller.utterances[1]
    assert over_it.start < interrupted < over_it.end  # stopped while the caller was still talking
    # The speaker fell silent at once: only what PortAudio already held played on after the
    # decision (its playback latency); the second of audio queued ahead was dropped.
    heard = voice_of(caller, reply, until=interrupted + caller.playback_latency)
    assert heard[1] < interrupted + caller.playback_latency + 0.1, (heard, interrupted)
    # Marks said "heard" for audio that had reached the ear, all of it, and nothing after the
    # interruption: the agent remembers what the caller heard.
    marks = [t for mark, t in run.marks if getattr(getattr(mark, "reply", None), "timeline", None) is reply]
    assert marks[0] == pytest.approx(heard[0], abs=0.04)
    assert interrupted - 0.06 < marks[-1] <= interrupted
    spoken = len(reply.heard_text.rstrip("…")) * SECONDS_PER_CHAR
    assert spoken == pytest.approx(len(marks) * FRAME_SECONDS, abs=0.5)  # a mark a frame; within a word
    assert long_reply.startswith(reply.heard_text.rstrip("…"))


async def test_half_duplex_keeps_a_loudspeaker_from_interrupting_the_agent(make_caller: Callable[..., Caller]) -> None:
    """The speaker's sound reaches the microphone (a loudspeaker in the room). Full duplex, the
    agent takes its own voice for the caller and stops; half duplex, it talks to the end and
    hears nothing of itself. With barge-in off in the agent file it talks to the end too, but
    what came back of its voice still reaches it as the caller's."""
    caller = make_caller(capture_latency=0.02)
    caller.echo = 0.5
    greeting = {"text": "Hello there, I talk for two seconds.", "interruptible": True}
    cases = {"full duplex": ({}, {}), "half duplex": ({"half_duplex": True}, {}),
             "no barge-in": ({}, {"enabled": False})}
    outcomes = {}
    for case, (transport, barge_in) in cases.items():
        registry = fake_registry()
        agent = fake_agent(registry, transport={**DEVICES, **transport},
                           prompt={"system": "Test.", "greeting": greeting},
                           turn_taking={"barge_in": {"min_speech": 0.3, "pause_on_speech": False, **barge_in}})

        async def script(run: Run) -> None:
            greeted = await run.turn_over(0)
            if greeted.outcome == "completed":
                await anyio.sleep(1.0)  # the echo dies away: does a turn of the caller's come of it?

        result, _ = await talk(agent, registry, caller, script)
        outcomes[case] = [turn.outcome for turn in result.timeline.turns]
    assert outcomes["full duplex"][0] == "interrupted"
    assert outcomes["half duplex"] == ["completed"]
    assert outcomes["no barge-in"][0] == "completed"


async def test_default_devices_and_hanging_up(caller: Caller) -> None:
    """No device named: PortAudio's defaults (the JACK server's own ports). The call runs on
    the driver's clock and hangs up cleanly, releasing the devices."""
    registry = fake_registry()
    agent = fake_agent(registry, transport={"provider": "local"})

    async def script(run: Run) -> None:
        await run.until(lambda: run.turn(0) is not None, "the greeting to be heard")
        assert run.call is not None and run.call.call_id == "local:system"

    result, run = await talk(agent, registry, caller, script)
    assert result.timeline.turns[0].marks.get("first_audio_out") is not None
    assert result.ended_because == "test over"
    ports = [port.name for port in caller.mic.get_ports("PortAudio:.*")]
    assert ports == []  # the streams are closed
