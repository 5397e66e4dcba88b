"""ElevenLabs' per-character alignment → :class:`TextMark` positions in the clause we sent.

Why a matcher and not an index: the characters ElevenLabs aligns are not always the clause's.
``alignment`` starts with the space of the socket's opening message; ``normalizedAlignment`` (all
some models send) spells out digits and symbols and changes case ("3 cats" → "three cats"); runs
of whitespace may collapse. So the aligned characters received so far are walked against the
clause, case-folded: equal characters pair up; a space only one side has, or punctuation only the
clause has, is stepped over; where the two differ (a normalised "three" against "3") the walk
resumes at the nearest place where three characters agree again. If that place is not in sight
yet, the walk waits for the next message's characters; it is re-run from the start each time, so
what it decided before never changes.

Times: each message's alignment is in milliseconds from the first sample of that message's audio
(or of the part it starts, when ``sync_alignment`` is off), so the offset is the audio received
before it, measured in samples rather than summed from durations, which need not add up to the
audio exactly. A character is spoken by its start plus its duration.
"""

from __future__ import annotations

import math

from voiceflow.frames import TextMark

RESYNC = 3
"""Characters that must agree for the walk to resume after the two texts differ."""

SEARCH = 48
"""How far (characters of both texts together) the walk looks for that agreement."""


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


def pair_up(text: str, got: str) -> list[tuple[int, int]]:
    """(clause index, aligned index) of every character the walk pairs; see the module doc."""
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < len(text) and j < len(got):
        if text[i] == got[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif got[j] == " ":
            j += 1
        elif not text[i].isalnum():
            i += 1
        else:
            found = _resync(text, got, i, j)
            if found is None:
                break
            i, j = found
    return pairs


def _resync(text: str, got: str, i: int, j: int) -> tuple[int, int] | None:
    for distance in range(1, SEARCH):
        for di in range(distance + 1):
            a, b = i + di, j + distance - di
            piece = text[a : a + RESYNC]
            if len(piece) == RESYNC and got[b : b + RESYNC] == piece:
                return a, b
    return None


class ClauseAligner:
    """Turns one clause's alignment messages into monotonic :class:`TextMark` entries."""

    def __init__(self, text: str) -> None:
        self._text = "".join(_fold(c) for c in text)
        self._got: list[str] = []
        self._ends: list[float] = []
        self.spoken = 0
        """Characters of the clause known to be spoken so far."""

    def marks(self, alignment: object, offset: float) -> tuple[TextMark, ...]:
        """Marks for one message's ``alignment``, whose times count from ``offset`` seconds into
        the clause's audio."""
        parsed = _timings(alignment)
        if parsed is None or self.spoken >= len(self._text):
            return ()
        chars, ends = parsed
        self._got += chars
        self._ends += [max(0.0, offset + end / 1000) for end in ends]
        marks: list[TextMark] = []
        for i, j in pair_up(self._text, "".join(self._got)):
            count, at = i + 1, self._ends[j]
            if count <= self.spoken:
                continue
            self.spoken = count
            if marks and marks[-1].at >= at:  # the same moment (or a time gone backwards): keep the furthest
                marks[-1] = TextMark(count, marks[-1].at)
            else:
                marks.append(TextMark(count, at))
        return tuple(marks)
