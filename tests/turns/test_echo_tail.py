"""The agent's echo after it stopped: which caller "turns" are its tail, and which the caller's."""

from __future__ import annotations

import numpy as np

from audio_fixtures import espeak_pcm
from voiceflow.clock import VirtualClock
from voiceflow.config.echo import EchoDefence
from voiceflow.config.models import BargeIn
from voiceflow.frames import FRAME_SAMPLES, AudioFrame
from voiceflow.metrics.timeline import TurnTimeline
from voiceflow.runtime.echo import EchoCanceller
from voiceflow.runtime.reply import Clause, Reply
from voiceflow.turns.barge_in import AgentStopped, BargeInPolicy
from voiceflow.turns.overlap_watch import OverlapWatch

STOPPED = AgentStopped(10.0, "the cafe on the corner opens at nine".split())
POLICY = BargeInPolicy(BargeIn(echo=EchoDefence(max_delay=0.4, tail_margin=0.1)))


def test_the_agents_last_words_coming_back_are_its_echo() -> None:
    assert POLICY.echo_tail(STOPPED, None, 10.0, 10.3, "nine.")
    assert POLICY.echo_tail(STOPPED, None, 9.9, 10.3, "Opens at nine")
    # Measured, the window is the path's delay (0.15 s) and the margin: 10.25 s.
    assert POLICY.echo_tail(STOPPED, 0.15, 10.2, 10.3, "nine")
    assert not POLICY.echo_tail(STOPPED, 0.15, 10.3, 10.5, "nine")


def test_a_caller_who_speaks_at_once_in_their_own_words_is_heard() -> None:
    assert not POLICY.echo_tail(STOPPED, None, 10.05, 10.9, "nine and tomorrow")
    assert not POLICY.echo_tail(STOPPED, None, 10.05, 10.9, "what about tomorrow")


def test_without_words_only_a_voice_that_ended_within_the_tail_is_echo() -> None:
    assert POLICY.echo_tail(STOPPED, None, 10.0, 10.45, "")
    assert not POLICY.echo_tail(STOPPED, None, 10.0, 10.7, "")
    assert not POLICY.echo_tail(STOPPED, None, 10.0, None, "")


def test_speech_after_the_tail_or_with_the_guard_off_is_the_callers() -> None:
    assert not POLICY.echo_tail(STOPPED, None, 10.6, 10.9, "nine")
    off = BargeInPolicy(BargeIn(echo_guard=False))
    assert not off.echo_tail(STOPPED, None, 10.0, 10.3, "nine")


class _Line:
    """The watch's transport: only pause/resume are used, and not by what is tested here."""

    def pause(self) -> bool:
        return False

    def resume(self) -> None:
        pass


def _stopped_watch(echo: EchoCanceller | None) -> OverlapWatch:
    """A watch that saw a reply ending in STOPPED's words heard to its end at 10.0 s."""
    watch = OverlapWatch(_Line(), VirtualClock(10.0), lambda: BargeIn(), echo)  # type: ignore[arg-type]
    reply = Reply(1, "reply", True, TurnTimeline(1, "reply"))
    reply.clauses.append(Clause("Third, the cafe on the corner opens at nine.", queued=800, heard=800, complete=True))
    watch.agent_finished(reply)
    return watch


def test_a_line_found_to_bring_nothing_back_has_no_tail_to_fear() -> None:
    """Where the canceller heard the agent talk for seconds and nothing came back, a caller
    who answers at once in the agent's own words ("... tea or coffee?" "Coffee.") is answered."""
    echo = EchoCanceller(EchoDefence())
    voice = np.frombuffer(espeak_pcm("Would you like some tea, or would you rather have coffee?"), np.int16)
    quiet = np.random.default_rng(1).normal(0, 30, len(voice)).astype(np.int16)
    for at in range(0, len(voice) - FRAME_SAMPLES, FRAME_SAMPLES):
        echo.played(voice[at : at + FRAME_SAMPLES].tobytes(), at / 16000)
        echo.clean(AudioFrame(quiet[at : at + FRAME_SAMPLES].tobytes(), at / 16000))
    assert echo.echoes is False
    assert not _stopped_watch(echo).echo_tail(10.1, 10.5, "nine")
    assert _stopped_watch(EchoCanceller(EchoDefence())).echo_tail(10.1, 10.3, "nine")  # nothing known yet
    assert _stopped_watch(None).echo_tail(10.1, 10.3, "nine")  # no canceller: the words decide
    assert not _stopped_watch(None).echo_tail(10.1, 10.3, "third")  # not among its last 8 words
