"""The ground truth of a scenario's call: the caller's real voice and the agent's audio on one axis."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceflow.frames import FRAME_SECONDS
from voiceflow.scenarios import load_suite, run_suite, scenario_registry
from voiceflow.scenarios.truth import CallTruth, ground_truth

pytestmark = pytest.mark.anyio

AGENT = Path(__file__).resolve().parent / "data" / "agent.yaml"
LONG = ("Well, there are many things to say about that. First of all, the weather today is mild. "
        "Second, the trains are running on time.")


async def truths(tmp_path: Path, text: str) -> list[CallTruth | None]:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    outcomes = await run_suite(load_suite(AGENT, path, scenario_registry()))
    return [ground_truth(outcome.run) for outcome in outcomes]


async def test_a_pause_inside_a_move_is_one_utterance_and_the_reply_into_it_is_placed_there(tmp_path: Path) -> None:
    [truth] = await truths(tmp_path, """\
scenarios:
  - name: cut into the pause
    agent: {turn_taking: {endpointing: {transcript_rules: {enabled: false}}}}
    caller:
      - say: ["I would like a pizza and", 0.9, "a salad please."]
""")
    assert truth is not None
    [sound] = truth.sounds
    assert sound.speech and sound.anchor == "agent_done" and sound.words == "I would like a pizza and a salad please."
    [utterance] = truth.utterances
    [(pause_start, pause_end)] = utterance.pauses
    assert 0.9 <= pause_end - pause_start < 1.0  # the scripted 0.9 s and espeak-ng's trimmed margins
    greeting, cut, answer = truth.turns
    assert greeting.kind == "greeting" and greeting.interruptible
    assert greeting.first_heard is not None and greeting.first_heard < 0.1  # seconds from the call's start
    assert greeting.last_heard is not None and greeting.last_heard <= sound.start
    assert cut.outcome == "interrupted" and cut.first_heard is not None
    assert utterance.within(cut.first_heard) and utterance.in_pause(cut.first_heard)
    assert pause_start < cut.marks["endpoint"] <= cut.first_heard
    assert answer.outcome == "completed" and answer.first_heard is not None and answer.first_heard > utterance.end
    assert truth.endpoints() == [cut.marks["endpoint"], answer.marks["endpoint"]]


async def test_moves_back_to_back_join_and_a_move_after_the_agent_does_not(tmp_path: Path) -> None:
    [truth] = await truths(tmp_path, """\
scenarios:
  - name: halves
    caller:
      - say: I would like to book a table
      - say: at eight tonight.
        wait: 0.25
      - cough: 0.2
        wait: 0.3
      - say: Thanks.
        after: agent_done
        wait: 0.5
""")
    assert truth is not None
    assert [s.action for s in truth.sounds] == ["say", "say", "cough", "say"]
    first, second, cough, thanks = truth.sounds
    assert second.onset is not None and first.voice_end is not None
    assert 0.25 <= second.onset - first.voice_end < 0.35
    assert [[s.index for s in u.sounds] for u in truth.utterances] == [[0, 1], [3]]
    assert truth.utterances[0].words == "I would like to book a table at eight tonight."
    assert truth.utterances[0].end == second.voice_end
    assert not cough.speech
    [(cough_start, cough_end)] = cough.voice
    assert cough_start == cough.start and cough_end == pytest.approx(cough.start + 0.2)
    assert thanks.anchor == "agent_done"


async def test_the_agent_audio_at_the_callers_ear_shows_where_it_stopped(tmp_path: Path) -> None:
    [truth] = await truths(tmp_path, f"""\
scenarios:
  - name: barge-in
    agent:
      llm: [{{provider: scripted-llm, first_token_delay: 0.05, token_delay: 0.005, replies: ['{LONG}', 'Sure.']}}]
    caller:
      - say: Tell me everything.
      - say: And what about tomorrow?
        after: agent_starts
        wait: 1.0
""")
    assert truth is not None
    talked_over = truth.turns[1]
    onset = truth.sounds[1].onset
    assert onset is not None and talked_over.audible_at(onset)
    assert talked_over.outcome == "interrupted" and onset <= talked_over.marks["interrupted"]
    stop = talked_over.stops_after(onset)
    assert stop is not None and 0 <= stop <= 0.15  # it pauses at the caller's onset
    assert talked_over.heard[0][1] == pytest.approx(onset + stop)
    assert talked_over.stops_after(talked_over.heard[0][0] - FRAME_SECONDS) is None


async def test_a_scenario_that_could_not_run_has_no_truth(tmp_path: Path) -> None:
    assert await truths(tmp_path, """\
scenarios:
  - name: no such voice
    voice: xx-nowhere
    caller:
      - say: Hello.
""") == [None]
