"""The scenario runner itself: callers timed from the agent, verdicts, reports, the command."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from voiceflow.frames import FRAME_SECONDS, SAMPLE_RATE
from voiceflow.scenarios import Outcome, load_suite, run_suite, scenario_registry
from voiceflow.scenarios.report import describe_outcome, write_junit

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
AGENT = HERE / "data" / "agent.yaml"
VOICEFLOW = str(Path(sys.executable).parent / "voiceflow")
LONG = ("Well, there are many things to say about that. First of all, the weather today is mild. "
        "Second, the trains are running on time.")


async def run(tmp_path: Path, text: str) -> list[Outcome]:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    return await run_suite(load_suite(AGENT, path, scenario_registry()))


def long_reply(first_token_delay: float = 0.05) -> str:
    return (f"    agent:\n      llm: [{{provider: scripted-llm, first_token_delay: {first_token_delay}, "
            f"token_delay: 0.005, replies: ['{LONG}', 'Sure.']}}]\n")


INTERRUPTED = """\
    caller:
      - say: Tell me everything.
      - id: cut
        say: And tomorrow?
        after: agent_starts
        wait: 1.5
"""
"""A caller who asks, then cuts into the answer 1.5 s after it starts."""


async def test_moves_are_timed_from_what_the_agent_does(tmp_path: Path) -> None:
    [outcome] = await run(tmp_path, "scenarios:\n  - name: timing\n" + long_reply() + """\
    caller:
      - say: Tell me everything.
        wait: 0.4
      - cough: 0.2
        after: agent_starts
        turn: reply
        wait: 0.7
      - say: Thanks.
        after: agent_done
        wait: 0.5
""")
    line = outcome.run.line
    assert line is not None and outcome.status == "passed", describe_outcome(outcome)
    greeting, reply = line.speech[:2]
    first, cough, thanks = line.moves
    assert first.start is not None and abs(first.start - (greeting.end + 0.4)) <= FRAME_SECONDS
    assert cough.start is not None and abs(cough.start - (reply.start + 0.7)) <= FRAME_SECONDS
    assert thanks.start is not None and abs(thanks.start - (reply.end + 0.5)) <= 2 * FRAME_SECONDS


@pytest.mark.parametrize("slow_llm", [0.05, 1.2])
async def test_an_interruption_lands_on_the_same_words_however_slow_the_agent(tmp_path: Path, slow_llm: float) -> None:
    """A busy machine delays the reply; the caller, timed from the reply's first audio, still
    interrupts it 1.5 s in, so the caller hears (and the context keeps) the same words."""
    [outcome] = await run(tmp_path, "scenarios:\n  - name: interrupted\n" + long_reply(slow_llm) + INTERRUPTED + """\
    expect:
      checks:
        - outcome: interrupted
          heard: Well, there are many things…
          yielded: {to: cut, within: 0.15}
          context: heard
""")
    assert outcome.status == "passed", describe_outcome(outcome)


async def test_a_caller_waiting_for_an_agent_that_never_speaks_gives_up(tmp_path: Path) -> None:
    [outcome] = await run(tmp_path, """\
scenarios:
  - name: nobody there
    agent: {prompt: {greeting: null}}
    max_wait: 2
    caller:
      - say: Hello?
        after: agent_starts
""")
    assert outcome.status == "failed"
    assert outcome.failures == ["the caller gave up after 2 s waiting for the agent (agent_starts)"]


async def test_xfail_is_expected_to_fail_and_passing_it_is_a_failure(tmp_path: Path) -> None:
    failing, passing = await run(tmp_path, """\
scenarios:
  - name: wrong
    xfail: not built yet
    caller: [{say: What time is it?}]
    expect: {turns: [greeting]}
  - name: right
    xfail: not built yet
    caller: [{say: What time is it?}]
    expect: {turns: [greeting, reply]}
""")
    assert (failing.status, failing.ok) == ("xfailed", True)
    assert (passing.status, passing.ok) == ("xpassed", False)
    assert passing.failures == ["passed, but it is marked xfail (not built yet): remove the mark"]


async def test_a_sound_that_cannot_be_made_is_an_error_of_that_scenario(tmp_path: Path) -> None:
    bad, good = await run(tmp_path, """\
scenarios:
  - {name: bad voice, voice: no-such-voice, caller: [{say: Hello}]}
  - {name: good voice, caller: [{say: Hello}]}
""")
    assert bad.status == "error" and "espeak-ng has no voice 'no-such-voice'" in bad.failures[0]
    assert good.status == "passed"


async def test_a_failure_shows_who_spoke_when(tmp_path: Path) -> None:
    [outcome] = await run(tmp_path, "scenarios:\n  - name: story\n" + long_reply() + INTERRUPTED + """\
    expect:
      turns: [greeting, reply]
      checks:
        - context: said
""")
    text = describe_outcome(outcome)
    assert text.startswith("FAIL  story")
    assert "✗ turns: expected ['greeting', 'reply'], got ['greeting/completed', 'reply/interrupted', 'reply/completed']" in text
    assert "✗ reply 1: context: expected the LLM to be shown said (heard 'Well, there are many things…')" in text
    assert "caller 2 (cut): say 'And tomorrow?'" in text
    assert "agent 2 reply interrupted: said 'Well, there are many things" in text
    assert "barge-in: agent 2 cut off" in text
    assert "turn end: the caller's turn judged over" in text
    lanes = [row for row in text.splitlines() if row.strip().startswith(("caller |", "agent  |", "marks  |"))]
    assert len(lanes) == 3 and "#" in lanes[0] and "=" in lanes[1] and "x" in lanes[2] and "e" in lanes[2]


async def test_echo_is_the_agents_audio_delayed_and_attenuated_in_the_callers_line(tmp_path: Path) -> None:
    [outcome] = await run(tmp_path, """\
scenarios:
  - name: echo
    echo: {gain: -6, delay: 0.2, words: false}
    agent: {turn_taking: {barge_in: {enabled: false}}}
    caller: [{silence: 1.0, after: previous}]
""")
    line = outcome.run.line
    assert line is not None
    caller, agent = (track.astype(np.float64) for track in line.tracks())
    delay = round(0.2 * SAMPLE_RATE)
    window = slice(round(0.3 * SAMPLE_RATE), round(1.0 * SAMPLE_RATE))  # greeting playing, caller quiet
    expected = agent[window.start - delay : window.stop - delay] * 10 ** (-6 / 20)
    assert np.abs(expected).max() > 1000
    assert np.abs(caller[window] - expected).max() <= 2


async def test_junit_for_ci(tmp_path: Path) -> None:
    outcomes = await run(tmp_path, """\
scenarios:
  - {name: passes, caller: [{say: What time is it?}], expect: {turns: [greeting, reply]}}
  - {name: fails, caller: [{say: What time is it?}], expect: {turns: [greeting]}}
  - {name: not yet, xfail: a missing feature, caller: [{say: What time is it?}], expect: {turns: []}}
""")
    path = tmp_path / "out" / "junit.xml"
    write_junit(outcomes, path, "suite")
    root = ET.parse(path).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert cases["passes"].find("failure") is None
    failure = cases["fails"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("turns: expected ['greeting']")
    assert "caller |" in (failure.text or "")
    skipped = cases["not yet"].find("skipped")
    assert skipped is not None and skipped.get("message") == "xfail: a missing feature"


def voiceflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOICEFLOW, *args], capture_output=True, text=True, timeout=300, cwd=HERE)


def test_the_command_exits_by_the_verdicts(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("scenarios:\n  - {name: one answer, caller: [{say: What time is it?}], expect: {turns: [greeting, reply]}}\n")
    bad.write_text("scenarios:\n  - {name: two answers, caller: [{say: What time is it?}], expect: {turns: [reply, reply]}}\n")
    result = voiceflow("test", str(AGENT), str(good), "--junit", str(tmp_path / "junit.xml"),
                       "--recordings", str(tmp_path / "calls"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith("PASS  one answer")
    assert result.stdout.splitlines()[-1].startswith("1 passed in ")
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "calls" / "one-answer.wav").is_file()
    assert (tmp_path / "calls" / "one-answer.timeline.json").is_file()

    result = voiceflow("test", str(AGENT), str(bad))
    assert result.returncode == 1 and "FAIL  two answers" in result.stdout and "caller |" in result.stdout

    result = voiceflow("test", str(AGENT), str(bad), "--only", "nothing like it")
    assert result.returncode == 2 and "no scenario's name contains 'nothing like it'" in result.stderr

    (tmp_path / "broken.yaml").write_text("scenarios:\n  - {name: x, caller: [{sya: hi}]}\n")
    result = voiceflow("test", str(AGENT), str(tmp_path / "broken.yaml"))
    assert result.returncode == 2 and "broken.yaml:2:" in result.stderr and "unknown field 'sya'" in result.stderr


async def test_the_agent_files_latency_budget_fails_a_slow_turn(tmp_path: Path) -> None:
    budget = "    agent: {latency_budget: {mouth_to_ear_ms: 300}}\n"
    slow, allowed = await run(tmp_path, f"""\
scenarios:
  - name: over budget
{budget}    caller: [{{say: What time is it?}}]
  - name: slow on purpose
    check_budgets: false
{budget}    caller: [{{say: What time is it?}}]
""")
    assert slow.status == "failed"
    [failure] = slow.failures
    assert failure.startswith("latency_budget: reply (agent turn 2): mouth_to_ear ") and "over its 300 ms budget" in failure
    assert allowed.status == "passed"
