"""Cutting streamed LLM text into clauses for TTS.

TTS needs whole phrases to sound natural, but waiting for a whole sentence costs latency on the
first one. So the *first* clause is cut as early as a comma after a few words allows; later clauses
are cut at sentence ends (or at a comma once they are long), by which time audio is already
playing and there is no hurry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from voiceflow.config.models import Chunking

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|\n+")
_SOFT_BREAK = re.compile(r"[,;:—–]+(?=\s)")
_LEANING_WORDS = frozenset(
    "a an the of to in on at for with by from into about and or but nor so as than if that "
    "which who whom whose is are was were be been being am do does did have has had will would "
    "can could should may might must my your his her its our their this these those i i'm "
    "you we they it he she not no very more most".split()
)
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.", "no."})


class ClauseChunker:
    """Feed text deltas with :meth:`push`; take finished clauses as they appear; :meth:`flush` at end."""

    def __init__(self, settings: Chunking) -> None:
        self._settings = settings
        self._buffer = ""
        self._emitted = 0

    def push(self, delta: str) -> Iterator[str]:
        self._buffer += delta
        while (cut := self._find_cut()) is not None:
            clause, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if clause:
                self._emitted += 1
                yield clause

    @property
    def emitted(self) -> int:
        return self._emitted

    def cut_at_word(self, min_words: int) -> str | None:
        """Force a clause out at the last complete word, if at least ``min_words`` are waiting.

        Used for the first clause only when the LLM is slow to reach any punctuation: a slightly
        less natural phrase break costs less than a caller listening to silence.
        """
        complete = self._buffer[: self._buffer.rstrip().rfind(" ") + 1]  # drop a word in progress
        words = complete.split()
        # Never end on a word that leans on the next one ("the capital of | France"): the TTS
        # would give it a falling, final intonation. Back up to a phrase boundary instead.
        while len(words) >= min_words and words[-1].lower().strip("'\"") in _LEANING_WORDS:
            words.pop()
        if len(words) < min_words:
            return None
        cut = 0
        for word in words:
            cut = self._buffer.index(word, cut) + len(word)
        head, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
        self._emitted += 1
        return head

    def flush(self) -> Iterator[str]:
        clause, self._buffer = self._buffer.strip(), ""
        if clause:
            self._emitted += 1
            yield clause

    def _find_cut(self) -> int | None:
        text = self._buffer
        for match in _SENTENCE_END.finditer(text):
            if not self._is_abbreviation(text, match.start()) and text[: match.end()].strip():
                return match.end()
        soft_min = self._settings.first_min_chars if self._emitted == 0 else self._settings.min_chars
        for match in _SOFT_BREAK.finditer(text):
            if match.end() >= soft_min:
                return match.end()
        if len(text) > self._settings.max_chars:
            space = text.rfind(" ", 0, self._settings.max_chars)
            return space if space > 0 else self._settings.max_chars
        return None

    @staticmethod
    def _is_abbreviation(text: str, dot: int) -> bool:
        start = text.rfind(" ", 0, dot) + 1
        word = text[start : dot + 1]
        if word.lower() in _ABBREVIATIONS:
            return True
        return len(word) == 2 and word[0].isupper()  # an initial, as in "J. Smith"


def split_text(text: str, settings: Chunking) -> list[str]:
    """Clauses of a fixed text (greetings, re-prompts), cut the same way as streamed text."""
    chunker = ClauseChunker(settings)
    return [*chunker.push(text + " "), *chunker.flush()]
