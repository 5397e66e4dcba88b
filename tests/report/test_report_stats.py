"""p50/p95 per stage: the percentile definition on hand-computed cases, and the table of real
calls against an independent computation (the standard library's median, numpy's percentile)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from voiceflow.report.build import build_report
from voiceflow.report.records import CallRecord, TurnRecord, read_calls
from voiceflow.report.stats import percentile, stage_stats
from voiceflow.report.text import summary_lines

pytestmark = pytest.mark.anyio


def test_percentiles_by_hand() -> None:
    # Ranks 0..3: p50 sits halfway between ranks 1 and 2, p95 at rank 2.85.
    assert percentile([0.4, 0.1, 0.3, 0.2], 50) == pytest.approx(0.25)
    assert percentile([0.4, 0.1, 0.3, 0.2], 95) == pytest.approx(0.3 + 0.85 * 0.1)
    # Five values: p50 is the middle one, p95 is rank 3.8, between 0.9 and 1.3.
    values = [0.7, 1.3, 0.5, 0.9, 0.6]
    assert percentile(values, 50) == pytest.approx(0.7)
    assert percentile(values, 95) == pytest.approx(0.9 + 0.8 * 0.4)
    assert percentile([0.42], 95) == 0.42
    assert percentile(values, 0) == 0.5 and percentile(values, 100) == 1.3
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_the_table_covers_the_stages_each_turn_measured() -> None:
    def reply(index: int, m2e: float, llm: float) -> TurnRecord:
        return TurnRecord(index, "reply", marks={
            "user_speech_end": 10.0, "llm_request": 10.1, "llm_first_token": 10.1 + llm, "first_audio_out": 10.0 + m2e})

    greeting = TurnRecord(0, "greeting", marks={"tts_request": 0.0, "tts_first_audio": 0.05})
    calls = [CallRecord("a", "a.json", [greeting, reply(1, 0.5, 0.2), reply(2, 0.9, 0.4)]),
             CallRecord("b", "b.json", [reply(1, 0.7, 0.1), reply(2, 1.3, 0.3), reply(3, 0.6, 0.2)])]
    table = {row.key: row for row in stage_stats(calls)}
    assert list(table) == ["llm_ttfb", "tts_ttfb", "mouth_to_ear"]
    m2e = table["mouth_to_ear"]
    assert (m2e.count, m2e.p50, m2e.p95, m2e.max) == (5, pytest.approx(0.7), pytest.approx(1.22), pytest.approx(1.3))
    llm = table["llm_ttfb"]  # 0.1, 0.2, 0.2, 0.3, 0.4
    assert (llm.count, llm.p50, llm.p95) == (5, pytest.approx(0.2), pytest.approx(0.38))
    assert (table["tts_ttfb"].count, table["tts_ttfb"].p95) == (1, pytest.approx(0.05))


async def test_real_calls_match_an_independent_computation(timelines: Path) -> None:
    calls, _ = read_calls([timelines])
    report = build_report(calls)
    turns = [turn for call in calls for turn in call.turns]
    spans = {"mouth_to_ear": ("user_speech_end", "first_audio_out"), "llm_ttfb": ("llm_request", "llm_first_token"),
             "first_clause": ("llm_first_token", "first_clause"), "tts_ttfb": ("tts_request", "tts_first_audio")}
    table = {row.key: row for row in report.stats}
    for key, (start, end) in spans.items():
        values = [turn.marks[end] - turn.marks[start] for turn in turns if start in turn.marks and end in turn.marks]
        assert table[key].count == len(values) > 1, key
        assert table[key].p50 == pytest.approx(statistics.median(values)), key
        assert table[key].p95 == pytest.approx(float(np.percentile(values, 95))), key
    assert table["mouth_to_ear"].count == 4  # three replies and one: greetings have no caller turn
    lines = summary_lines(report)
    assert lines[0] == "latency over 6 turns in 2 calls:"
    m2e_line = next(line for line in lines if line.lstrip().startswith("mouth-to-ear"))
    assert f"{table['mouth_to_ear'].p95 * 1000:.0f} ms" in m2e_line
    assert any("turn 2: mouth_to_ear" in line and "blame endpointing" in line for line in lines)
