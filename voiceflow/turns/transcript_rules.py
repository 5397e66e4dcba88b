"""What the words so far say about whether the caller is done.

Silence alone cannot tell "My number is five five five …" (reading digits, pausing) from "Five."
(an answer); the words can. These rules look at the transcript of the turn so far and say how
long a pause must be before the turn ends:

* **longer** after a trailing conjunction, preposition or filler ("and", "to", "um"), in the
  middle of a number or a spelling (a run of digits or of single letters), or after a comma;
* **shorter** after a complete question;
* and whatever the agent file's own regex rules say.

A rule that asks for more time always wins over one that asks for less: waiting a little longer
costs latency, cutting a caller off costs the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from voiceflow.config.endpointing import TranscriptRules

TRAILING_WORDS = frozenset(
    "and or but so because um uh er erm hmm like then to the a an with of for my is if that "
    "your our their from at in on by about than as".split()
)
"""Words a finished sentence rarely ends on, in English."""

NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand double triple".split()
)

_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True, slots=True)
class Hint:
    """How long a pause after this transcript must be, and why (for the timeline)."""

    silence: float
    reason: str


class TranscriptJudge:
    def __init__(self, settings: TranscriptRules) -> None:
        self.settings = settings

    @cached_property
    def _extra(self) -> list[tuple[re.Pattern[str], float, str]]:
        return [(re.compile(rule.pattern), rule.silence, rule.pattern) for rule in self.settings.extra]

    def hints(self, text: str) -> list[Hint]:
        """Every rule that has something to say about ``text`` (none: the defaults stand)."""
        if not self.settings.enabled or not text.strip():
            return []
        found = [Hint(silence, f"rule /{pattern}/") for pattern_re, silence, pattern in self._extra
                 if pattern_re.search(text)]
        unfinished = self._unfinished(text)
        if unfinished is not None:
            found.append(Hint(self.settings.unfinished_silence, unfinished))
        elif text.rstrip().endswith("?"):
            found.append(Hint(self.settings.question_silence, "a complete question"))
        return found

    def _unfinished(self, text: str) -> str | None:
        stripped = text.rstrip()
        if stripped.endswith((",", ";", ":", "-", "…", "...")):
            return "ends mid-list"
        words = [w.lower() for w in _WORD.findall(stripped)]
        if not words:
            return None
        if words[-1] in TRAILING_WORDS and not stripped.endswith(("?", "!")):
            return f"ends on '{words[-1]}'"
        if _run(words, lambda w: w in NUMBER_WORDS or w.isdigit()) >= 2 or (words[-1].isdigit() and len(words[-1]) >= 3):
            return "mid-number"
        if _run(words, lambda w: len(w) == 1 and w.isalpha() and w not in ("a", "i")) >= 2:
            return "mid-spelling"
        return None


def _run(words: list[str], test: Callable[[str], bool]) -> int:
    """How many of the last ``words`` in a row pass ``test``."""
    count = 0
    for word in reversed(words):
        if not test(word):
            break
        count += 1
    return count
