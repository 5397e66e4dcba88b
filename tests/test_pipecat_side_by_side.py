"""The side-by-side benchmark's arithmetic, without Pipecat: the per-call figures and their
statistics on records saved from a real 10-call run of both frameworks
(tests/data/pipecat_side_by_side), the listener's bookkeeping, and the caller it builds."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "pipecat_side_by_side"
SAMPLE = Path(__file__).resolve().parent / "data" / "pipecat_side_by_side"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
import run  # noqa: E402

SCENARIO = common.Scenario(speech_end=1.2, interrupt_onset=3.8, duration=6.12)


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((SAMPLE / name).read_text())
    return result


def test_fixed_delays_are_the_issues_figures() -> None:
    # STT 150 + LLM first token 200 + the 5 gaps up to the token that ends the first sentence
    # + TTS 100.
    assert common.FIXED_DELAYS == pytest.approx(0.475)
    words = common.REPLY.split(" ")
    assert len(words) == 20
    assert words[common.FIRST_SENTENCE_TOKENS - 1].endswith(".")
    assert not any(w.endswith((".", ",", "?", "!")) for w in words[: common.FIRST_SENTENCE_TOKENS - 1])


def test_call_figures_of_recorded_calls() -> None:
    voiceflow = load("voiceflow-10-0.json")["records"][0]
    pipecat = load("pipecat-10-0.json")["records"][0]
    assert common.call_figures(voiceflow, SCENARIO) == pytest.approx(
        {"overhead": 95.2, "post_vad": 34.5, "vad_offset": 60.7, "barge_in": 256.3})
    assert common.call_figures(pipecat, SCENARIO) == pytest.approx(
        {"overhead": 235.4, "post_vad": 95.7, "vad_offset": 139.7, "barge_in": 356.5})


def test_call_figures_pick_the_edges_of_the_question() -> None:
    record = {
        # agent audio: the reply (interrupted), then the answer to the interruption
        "agent": [[1.9, 4.0], [5.5, 6.1]],
        # a pause inside the question, the question's end, the interruption's end
        "vad_ends": [0.9, 1.45, 5.0],
        "caller_late": 0.0,
    }
    figures = common.call_figures(record, SCENARIO)
    assert figures["vad_offset"] == pytest.approx(50.0)
    assert figures["post_vad"] == pytest.approx(1000 * (1.9 - 1.45 - 0.475))
    assert figures["barge_in"] == pytest.approx(200.0)


def test_call_figures_of_a_call_that_did_not_get_there() -> None:
    silent = {"agent": [], "vad_ends": [], "caller_late": 0.0}
    assert common.call_figures(silent, SCENARIO) == {
        "overhead": None, "post_vad": None, "vad_offset": None, "barge_in": None}
    # An overloaded framework: the question's reply starts only after the caller cut in (and
    # before the interruption's own end edge, so it is still that reply): its lateness counts;
    # the agent was not audible at the onset, so there is no barge-in to time.
    late = {"agent": [[4.2, 6.0], [6.5, 7.0]], "vad_ends": [2.5, 6.0], "caller_late": 0.3}
    assert common.call_figures(late, SCENARIO) == pytest.approx(
        {"overhead": 2325.0, "post_vad": 1225.0, "vad_offset": 1100.0, "barge_in": None})
    # Audio that starts only after the interruption's end edge answers the interruption.
    unanswered = {"agent": [[6.5, 7.0]], "vad_ends": [1.45, 6.0], "caller_late": 0.0}
    assert common.call_figures(unanswered, SCENARIO)["overhead"] is None


def test_listener_merges_late_chunks_and_ignores_silence() -> None:
    listener = common.Listener(t0=10.0)
    tone = common.tone(0.02, common.RATE).tobytes()
    silence = bytes(len(tone))
    listener.played(10.0, silence, common.RATE)
    listener.played(11.0, tone, common.RATE)
    listener.played(11.05, tone, common.RATE)  # 30 ms late: still one stretch
    listener.played(11.07, silence, common.RATE)
    listener.played(11.5, tone, common.RATE)  # a new stretch
    listener.vad_end(10.5)
    listener.caller_frame(10.02, 10.025)
    listener.caller_frame(10.04, 10.041)
    assert listener.as_record() == {
        "agent": [[1.0, 1.07], [1.5, 1.52]], "vad_ends": [0.5], "caller_late": pytest.approx(0.005),
        "caller_late_at": pytest.approx(0.02)}


def test_percentile_interpolates_between_ranks() -> None:
    assert common.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert common.percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    assert common.percentile([7.0], 0.95) == 7.0
    assert math.isnan(common.percentile([], 0.5))


def test_run_figures_of_a_recorded_run() -> None:
    result = load("voiceflow-10-0.json")
    row = common.run_figures(result, SCENARIO)
    assert row["calls"] == 10
    assert row["overhead_n"] == row["barge_in_n"] == 10
    assert row["cpu_ms_per_call_s"] == pytest.approx(1000 * 1.16 / (10 * 6.140462933999515))
    assert row["rss_mb_per_call"] == pytest.approx((120.03125 - 105.296875) / 10)
    per_call = sorted(v for r in result["records"] if (v := common.call_figures(r, SCENARIO)["overhead"]) is not None)
    assert row["overhead_p50"] == pytest.approx((per_call[4] + per_call[5]) / 2)
    assert per_call[0] <= row["overhead_p95"] <= per_call[-1]


def test_medians_leave_out_runs_that_measured_nothing() -> None:
    rows = [{"a": 1.0, "b": math.nan}, {"a": 3.0, "b": 5.0}, {"a": 2.0, "b": math.nan}]
    assert common.medians(rows) == {"a": 2.0, "b": 5.0}
    assert math.isnan(common.medians([{"a": math.nan}])["a"])


def test_ratio_is_undefined_where_it_would_mislead() -> None:
    assert common.ratio(30.0, 60.0) == pytest.approx(0.5)
    assert math.isnan(common.ratio(-5.0, 60.0))
    assert math.isnan(common.ratio(5.0, 0.0))
    assert math.isnan(common.ratio(math.nan, 60.0))


def test_summary_table_of_the_recorded_runs() -> None:
    table = run.summarise(SAMPLE)
    lines = table.splitlines()
    assert [line.split()[1] for line in lines[1:]] == ["voiceflow", "pipecat", "vf/pipecat"]
    voiceflow = common.medians(common.run_figures(load(f"voiceflow-10-{i}.json"), SCENARIO) for i in (0, 1))
    pipecat = common.medians(common.run_figures(load(f"pipecat-10-{i}.json"), SCENARIO) for i in (0, 1))
    ratios = [float(cell) for cell in lines[3].split()[2:]]
    expected = [common.ratio(voiceflow[key], pipecat[key]) for key, _ in common.COLUMNS]
    assert ratios == pytest.approx(expected, abs=0.006)


def test_caller_is_the_recording_twice_with_the_interruption_where_the_scenario_says() -> None:
    if not common.RECORDING.is_file():
        pytest.skip(f"{common.RECORDING} missing: apt-get install pocketsphinx-testdata")
    pcm, scenario = common.build_caller(common.read_recording(common.RECORDING), interrupt_after=2.6)
    samples = np.frombuffer(pcm, dtype="<i2")
    assert len(samples) == round(scenario.duration * common.RATE)
    assert len(samples) % round(common.FRAME * common.RATE) == 0
    assert int(np.abs(samples.astype(np.int32)).max()) == pytest.approx(32767 * 10 ** (-3 / 20), abs=2)
    half = round((scenario.speech_end + 1.0) * common.RATE)
    start, end = common.speech_bounds(samples[:half])
    assert end == pytest.approx(scenario.speech_end)
    onset, _ = common.speech_bounds(samples[half:])
    assert onset + half / common.RATE == pytest.approx(scenario.interrupt_onset, abs=0.01)
    assert scenario.interrupt_onset - scenario.speech_end == pytest.approx(2.6, abs=0.01)
