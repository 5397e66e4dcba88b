"""Which stage the caller was waiting on, moment by moment, between their last word and the
agent's first sound.

The stages of a turn overlap (the reply starts while the silence is still being confirmed, the
recogniser's decode hides inside that silence), so their spans do not add up to mouth-to-ear and
the largest span is not necessarily what made a turn slow. Walking back from the first audio heard
along the marks each step actually waited for splits mouth-to-ear into *shares* that do add up:
the time spent on the critical path in each stage. A budget miss is blamed on those shares, and
the report prints them under each waterfall.
"""

from __future__ import annotations

from collections.abc import Mapping

START = "user_speech_end"
END = "first_audio_out"

WAITS_ON: dict[str, tuple[tuple[str, str], ...]] = {
    "first_audio_out": (("tts_first_audio", "playout"), ("endpoint", "playout")),
    "tts_first_audio": (("tts_request", "tts_ttfb"),),
    "tts_request": (("first_clause", "first_clause"),),
    "first_clause": (("llm_first_token", "first_clause"),),
    "llm_first_token": (("llm_request", "llm_ttfb"),),
    "llm_request": (("preemptive_start", "handoff"), ("endpoint", "handoff"), ("stt_final", "handoff")),
    "preemptive_start": (("stt_final", "handoff"),),
    "endpoint": (("stt_final", "endpointing"), ("user_speech_end", "endpointing")),
    "stt_final": (("stt_finalize", "stt_ttfb"),),
    "stt_finalize": (("user_speech_end", "endpointing"),),
}
"""For each mark, the marks it waits for and the stage the wait between them belongs to. The
first audio is released by whichever comes later, the voice's first audio or the endpoint (a
preemptive reply's audio is held until the turn is confirmed over); the LLM is asked after the
final transcript, or after the endpoint when replies are not preemptive. ``playout`` is the
transport getting the audio to the caller's ear; ``handoff`` is voiceflow's own step between the
final transcript and the LLM request."""

RELEASED_BY = {("endpoint", "stt_final"): 0.02}
"""Waits that bind only when the later mark came right after the earlier one (seconds). The
endpoint needs both enough silence and the final transcript; the silence deadline is not a mark,
so an endpoint within a frame of the final was waiting for the recogniser, and any other endpoint
for the silence (the recogniser then finished inside it, hidden)."""

OTHER = "other"
"""Time the marks cannot attribute (a mark missing, e.g. a turn ended by the keypad)."""


def critical_shares(marks: Mapping[str, float]) -> dict[str, float]:
    """Split mouth-to-ear (seconds) into the stages the caller waited on, in the order waited.

    Empty when the turn has no mouth-to-ear (a greeting, a reply never heard). The values add up
    to mouth-to-ear exactly. Marks may be absolute or relative to any origin: only differences
    count.
    """
    if START not in marks or END not in marks:
        return {}
    start = marks[START]
    waited: list[tuple[str, float]] = []  # walking back: the latest wait first
    node, t = END, marks[END]
    while node != START and t > start:
        waits = [
            (marks[name], name, stage)
            for name, stage in WAITS_ON.get(node, ())
            if name in marks and marks[name] <= t and t - marks[name] <= RELEASED_BY.get((node, name), t - start)
        ]
        if not waits:
            waited.append((OTHER, t - start))
            break
        at, node, stage = max(waits)
        at = max(at, start)
        waited.append((stage, t - at))
        t = at
    shares: dict[str, float] = {}
    for stage, seconds in reversed(waited):
        shares[stage] = shares.get(stage, 0.0) + seconds
    return shares
