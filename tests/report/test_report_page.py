"""The report of real calls (scripted providers, the file transport, the virtual clock): the page
is well-formed, self-contained XML with every turn and every stage a turn went through, the PNG
is the same drawing, and budget misses are shown on exactly the turns that missed."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from voiceflow.report.build import build_report, write_report
from voiceflow.report.layout import WIDTH
from voiceflow.report.png import render_png
from voiceflow.report.records import CallRecord, call_from_dict, read_calls
from voiceflow.report.scene import Text

pytestmark = pytest.mark.anyio

SVG = "{http://www.w3.org/2000/svg}"


def parse(html: str) -> ET.Element:
    """The page as XML: a stray ``<``, an unclosed element or a named entity fails here."""
    assert html.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(html.removeprefix("<!DOCTYPE html>\n"))


def articles(page: ET.Element) -> dict[tuple[str, int], ET.Element]:
    found = {}
    for section in page.iter("section"):
        for article in section.iter("article"):
            found[(section.attrib["id"], int(article.attrib["data-turn"]))] = article
    return found


def drawn_text(article: ET.Element) -> list[str]:
    return [text.text or "" for text in article.iter(f"{SVG}text")]


def notes(article: ET.Element) -> list[str]:
    return ["".join(item.itertext()) for item in article.iter("li")]


async def test_every_turn_of_every_call_has_its_waterfall_with_its_stages(timelines: Path) -> None:
    calls, skipped = read_calls([timelines])
    assert skipped == [] and [Path(call.source).name for call in calls] == ["eventful.timeline.json",
                                                                            "plain.timeline.json"]
    page = parse(build_report(calls).html())
    found = articles(page)
    assert sorted(found) == [("call-0", i) for i in range(4)] + [("call-1", 0), ("call-1", 1)]

    greeting = drawn_text(found[("call-0", 0)])
    assert "TTS first audio" in greeting and "agent speech heard" in greeting and "caller speech" not in greeting

    cut_off = drawn_text(found[("call-0", 1)])
    for row in ("caller speech", "endpointing", "STT final", "LLM first token", "first clause", "tool calls",
                "TTS first audio", "agent speech heard", "barge-in / overlaps", "mouth-to-ear"):
        assert row in cut_off, row
    for mark in ("VAD", "first audio heard", "caller cut in", "demo.lookup"):
        assert mark in cut_off, mark
    assert any("scripted-llm failed" in text for text in cut_off)
    assert any(text.startswith("the caller waited on: endpointing") for text in cut_off)
    assert any(note.startswith("fallback: llm/scripted-llm") for note in notes(found[("call-0", 1)]))
    assert any(note.startswith("tool demo.lookup") for note in notes(found[("call-0", 1)]))

    murmured = found[("call-0", 3)]
    assert "1 overlap ignored" in drawn_text(murmured)
    assert any("too short to interrupt" in note for note in notes(murmured))

    title = page.find("head/title")
    assert title is not None and "2 calls, 6 turns, 2 latency budget misses" in (title.text or "")


async def test_budget_misses_show_on_exactly_the_turns_that_missed(timelines: Path) -> None:
    calls, _ = read_calls([timelines])
    missed = {(call.source, turn.index) for call in calls for turn in call.turns if turn.budget_misses}
    assert missed == {(str(timelines / "eventful.timeline.json"), 2)}
    found = articles(parse(build_report(calls).html()))
    for (section, index), article in found.items():
        red = [text for text in drawn_text(article) if text.startswith(("over budget", "budget "))]
        listed = [note for note in notes(article) if note.startswith("latency budget:")]
        if (section, index) == ("call-0", 2):
            assert set(red) >= {"budget 800 ms", "budget 1000 ms"}
            assert any(text.startswith("over budget +") for text in red)
            assert [note.split()[2] for note in listed] == ["mouth_to_ear", "endpointing"]
            assert "blame endpointing" in listed[0]
        else:
            assert red == [] and listed == [], (section, index)


async def test_the_page_fetches_nothing(timelines: Path) -> None:
    calls, _ = read_calls([timelines])
    html = build_report(calls).html()
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import", html)
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg")


async def test_the_png_is_the_same_drawing_at_its_size(timelines: Path, tmp_path: Path) -> None:
    calls, _ = read_calls([timelines])
    report = build_report(calls)
    picture = report.picture()
    write_report(report, tmp_path / "r.html", tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as image:
        assert image.format == "PNG" and image.size == (WIDTH, picture.height)
        image.load()
        colors = {color for _, color in image.getcolors(maxcolors=1 << 20) or []}
    # Every stage's colour is painted somewhere (the picture is not blank, nor text only).
    for rgb in ((0xF0, 0xB4, 0x5A), (0x8F, 0xD1, 0x8A), (0x7F, 0xB3, 0xEA), (0xE7, 0x9A, 0xD0), (0xE5, 0x67, 0x5C)):
        assert rgb in colors, rgb
    short = report.picture(max_turns=3)
    headings = [shape.text for shape in short.shapes if isinstance(shape, Text) and shape.size == 16]
    assert headings[-1] == "3 more turns are in the HTML page" and short.height < picture.height
    double = render_png(picture, scale=2)
    assert double.size == (2 * WIDTH, 2 * picture.height)
    buffer = io.BytesIO()
    double.save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).size == double.size


def test_a_timeline_with_fields_missing_still_draws() -> None:
    """A timeline from an older or newer voiceflow: only what is there is drawn."""
    data: dict[str, Any] = {"turns": [
        {"kind": "reply", "marks": {"user_speech_end": 1.0, "endpoint": 1.5, "first_audio_out": 1.9,
                                    "odd": "not a number"}, "tools": [{"tool": "x"}], "budget_misses": ["?"]},
        {},
    ]}
    call = call_from_dict(data, "old.json")
    assert call.call_id == "old" and [turn.index for turn in call.turns] == [0, 1]
    assert call.turns[0].marks == {"user_speech_end": 1.0, "endpoint": 1.5, "first_audio_out": 1.9}
    page = parse(build_report([call]).html())
    texts = drawn_text(articles(page)[("call-0", 0)])
    assert "endpointing" in texts and "mouth-to-ear" in texts
    assert "no stage was measured in this turn" in drawn_text(articles(page)[("call-0", 1)])


def test_text_is_escaped() -> None:
    call = CallRecord("<call & co>", "x.json")
    call.turns = call_from_dict({"turns": [{"kind": "reply", "user_text": "a < b & \"c\"",
                                            "marks": {"user_speech_end": 0.0, "first_audio_out": 0.5}}]},
                                "x.json").turns
    page = parse(build_report([call]).html())
    assert any('a < b & "c"' in text for text in drawn_text(articles(page)[("call-0", 0)]))
    assert "call <call & co>" in "".join(page.itertext())
