"""Music judged for the hold policy: off the event loop while a pause is confirmed, once per turn,
and while the music still plays (the hold line said as it starts)."""

from __future__ import annotations

import pytest

from audio_fixtures import espeak_pcm
from voiceflow.clock import open_clock
from voiceflow.config.ivr import IvrPolicy
from voiceflow.config.models import HoldPolicy, UnhappyPaths
from voiceflow.frames import FRAME_BYTES, AudioFrame
from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.music import MusicVerdict
from voiceflow.scenarios.sounds import music
from voiceflow.turns.hold import MUSIC_CHECK_SECONDS, HoldWatch
from voiceflow.turns.ivr import IvrWatch
from voiceflow.turns.replies import UserTurn
from voiceflow.turns.triage import Route, TurnTriage
from voiceflow.turns.unhappy import UnhappyScript

pytestmark = pytest.mark.anyio


def tail_of(pcm: bytes) -> AudioTail:
    tail = AudioTail(8.0)
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        tail.push(AudioFrame(pcm[i : i + FRAME_BYTES], i / 32_000))
    return tail


class CountingHold(HoldWatch):
    def __init__(self, policy: HoldPolicy) -> None:
        super().__init__(lambda: policy)
        self.judged = 0

    def music(self, pcm: bytes) -> MusicVerdict | None:
        self.judged += 1
        return super().music(pcm)


def triage_for(pcm: bytes, policy: HoldPolicy) -> tuple[TurnTriage, CountingHold]:
    hold = CountingHold(policy)
    return TurnTriage(UnhappyScript(UnhappyPaths()), hold, tail_of(pcm), IvrWatch(IvrPolicy)), hold


async def test_the_verdict_is_judged_off_the_loop_once_and_ready_at_the_endpoint() -> None:
    triage, hold = triage_for(music(6.0).samples.tobytes(), HoldPolicy())
    user = UserTurn(start=0.0, segment_start=0.0)
    user.marks["user_speech_end"] = 6.0
    async with open_clock("virtual"):
        await triage.prejudge(user, 6.0)
    assert hold.judged == 1
    assert triage.judge(user).route is Route.IGNORE and triage.judge(user).music is not None
    assert hold.judged == 1  # the preemptive check and the endpoint reuse it


async def test_without_detection_nothing_is_judged() -> None:
    triage, hold = triage_for(music(6.0).samples.tobytes(), HoldPolicy(detect_music=False))
    user = UserTurn(start=0.0, segment_start=0.0)
    async with open_clock("virtual"):
        await triage.prejudge(user, 6.0)
    assert hold.judged == 0


def test_music_is_recognised_three_seconds_in_and_speech_is_not() -> None:
    user = UserTurn(start=0.0, segment_start=0.0)
    playing, _ = triage_for(music(12.0).samples.tobytes()[: 2 * 16_000 * 4], HoldPolicy(music_line="I'll hold."))
    assert playing.music_until(user, MUSIC_CHECK_SECONDS) is not None
    talking, _ = triage_for(espeak_pcm("I was calling about my bill, which is higher than last month's."),
                            HoldPolicy(music_line="I'll hold."))
    assert talking.music_until(user, MUSIC_CHECK_SECONDS) is None


def test_the_check_is_set_only_while_a_line_is_still_to_say() -> None:
    assert HoldWatch(lambda: HoldPolicy()).music_check_at(1.0) is None
    hold = HoldWatch(lambda: HoldPolicy(music_line="I'll hold."))
    assert hold.music_check_at(1.0) == 1.0 + MUSIC_CHECK_SECONDS
    assert hold.music_line() == "I'll hold." and hold.music_line() is None
    assert hold.music_check_at(5.0) is None
    hold.released()
    assert hold.music_check_at(5.0) == 5.0 + MUSIC_CHECK_SECONDS
