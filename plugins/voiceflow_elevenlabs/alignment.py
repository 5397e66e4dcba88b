"""ElevenLabs' per-character alignment → :class:`TextMark` positions in the clause we sent.

Why a matcher and not an index: the characters ElevenLabs aligns are not always the clause's.
``alignment`` starts with the space of the socket's opening message; ``normalizedAlignment`` (all
some models send) spells out digits and symbols and changes case ("3 cats" → "three cats"); runs
of whitespace may collapse. So each message's characters are matched, case-folded, against the
clause text just after what is already known to be spoken (``difflib``, within a window), and only
matches of a few characters, or ones that continue exactly where the last match ended, count: a
lone "t" of "three" must not claim the "t" of "cats". Text that matches nothing (the "3") is
passed over once a later match is found.

Times: each message's alignment is in milliseconds from the first sample of that message's audio
(or of the part it starts, when ``sync_alignment`` is off), so the offset is the audio received
before it, measured in samples rather than summed from durations, which need not add up to the
audio exactly. A character is spoken by its start plus its duration.
"""

from __future__ import annotations

import math
from difflib import SequenceMatcher

from voiceflow.frames import TextMark

MIN_MATCH = 3
"""Characters a match needs unless it continues exactly where the previous one ended."""


def _fold(ch: object) -> str:
    """One comparable character per aligned entry, so indexes stay in step."""
    if not isinstance(ch, str) or not ch or ch.isspace():
        return " "
    return ch.casefold()[0]


def _timings(alignment: object) -> tuple[list[str], list[float]] | None:
    """Characters and their end times in ms, or None if the alignment is unusable (it is
    optional: a malformed one costs the marks, never the audio)."""
    if not isinstance(alignment, dict):
        return None
    chars, starts, durations = (alignment.get(k) for k in ("chars", "charStartTimesMs", "charDurationsMs"))
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(durations, list)):
        return None
    if not len(chars) == len(starts) == len(durations):
        return None
    ends: list[float] = []
    for start, duration in zip(starts, durations, strict=True):
        if isinstance(start, bool) or isinstance(duration, bool):
            return None
        if not isinstance(start, int | float) or not isinstance(duration, int | float):
            return None
        end = float(start) + max(0.0, float(duration))
        if not math.isfinite(end) or start < 0:
            return None
        ends.append(end)
    return [_fold(c) for c in chars], ends


class ClauseAligner:
    """Turns one clause's alignment messages into monotonic :class:`TextMark` entries."""

    def __init__(self, text: str) -> None:
        self._text = "".join(_fold(c) for c in text)
        self.spoken = 0
        """Characters of the clause known to be spoken so far."""

    def marks(self, alignment: object, offset: float) -> tuple[TextMark, ...]:
        """Marks for one message's ``alignment``, whose times count from ``offset`` seconds into
        the clause's audio."""
        parsed = _timings(alignment)
        if parsed is None or self.spoken >= len(self._text):
            return ()
        chars, ends = parsed
        got = "".join(chars)
        start = self.spoken
        window = self._text[start : start + len(got) + 16 + len(got) // 2]
        matcher = SequenceMatcher(None, got, window, autojunk=False)
        marks: list[TextMark] = []
        last_end = 0
        for a, b, size in matcher.get_matching_blocks():
            if size == 0 or (size < MIN_MATCH and b != last_end):
                continue
            last_end = b + size
            for k in range(size):
                count = start + b + k + 1
                if count > self.spoken:
                    self.spoken = count
                    at = max(0.0, offset + ends[a + k] / 1000)
                    if marks and marks[-1].at >= at:  # same moment: keep the furthest
                        marks[-1] = TextMark(count, marks[-1].at)
                    else:
                        marks.append(TextMark(count, at))
        return tuple(marks)
