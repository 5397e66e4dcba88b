"""The stages a report shows, in the order a turn goes through them.

One table serves the waterfall's rows, the percentile table and the colours, so a stage is named
and coloured the same everywhere a reader meets it. Span names are the timeline's own
(:data:`voiceflow.metrics.timeline.SPANS`) plus ``first_clause``, which the timeline leaves to be
derived from its marks.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceflow.metrics.timeline import SPANS


@dataclass(frozen=True)
class Stage:
    key: str
    """The span name (as in the timeline, the budgets and the critical-path shares)."""
    label: str
    start: str
    end: str
    color: str
    """Fill of its bar; text on it stays dark, so colours are mid-light."""


STAGES = (
    Stage("endpointing", "endpointing", *SPANS["endpointing"], "#f0b45a"),
    Stage("vad_delay", "VAD end of speech", *SPANS["vad_delay"], "#f6d29b"),
    Stage("stt_ttfb", "STT final", *SPANS["stt_ttfb"], "#8fd18a"),
    Stage("llm_ttfb", "LLM first token", *SPANS["llm_ttfb"], "#7fb3ea"),
    Stage("first_clause", "first clause", "llm_first_token", "first_clause", "#b3a4ea"),
    Stage("tts_ttfb", "TTS first audio", *SPANS["tts_ttfb"], "#e79ad0"),
    Stage("endpoint_to_first_audio", "endpoint to first audio", *SPANS["endpoint_to_first_audio"], "#c9c9c9"),
    Stage("mouth_to_ear", "mouth-to-ear", *SPANS["mouth_to_ear"], "#e5675c"),
)
BY_KEY = {stage.key: stage for stage in STAGES}

SHARE_LABELS = {
    "endpointing": "endpointing",
    "stt_ttfb": "STT",
    "handoff": "hand-off",
    "llm_ttfb": "LLM",
    "first_clause": "first clause",
    "tts_ttfb": "TTS",
    "playout": "playout",
    "other": "other",
}
"""How the critical-path shares (:mod:`voiceflow.metrics.critical_path`) read in a sentence."""

CALLER_COLOR = "#9aa7b5"
AGENT_COLOR = "#4f8f6f"
TOOL_COLOR = "#d9a441"
FAINT_COLOR = "#dfe6ee"
MISS_COLOR = "#c62828"
FALLBACK_COLOR = "#e07b00"
INK = "#1d2733"
GRID = "#e3e7ec"


def span_of(key: str, marks: dict[str, float]) -> float | None:
    """A stage's span from a turn's marks, in seconds, or None if either mark is missing."""
    stage = BY_KEY[key]
    if stage.start in marks and stage.end in marks:
        return marks[stage.end] - marks[stage.start]
    return None
