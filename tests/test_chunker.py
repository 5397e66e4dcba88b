"""Clause chunking: early first clause, natural later ones, fixed texts cut the same way."""

from __future__ import annotations

from voiceflow.config.models import Chunking
from voiceflow.runtime.chunker import ClauseChunker, split_text


def feed(text: str, settings: Chunking | None = None, step: int = 3) -> list[str]:
    chunker = ClauseChunker(settings or Chunking())
    out: list[str] = []
    for i in range(0, len(text), step):
        out += chunker.push(text[i : i + step])
    return out + list(chunker.flush())


def test_sentences_are_clauses_even_when_tokens_split_them() -> None:
    assert feed("Hello there. How are you today? I am fine!") == [
        "Hello there.", "How are you today?", "I am fine!"]


def test_first_clause_may_end_at_an_early_comma_later_ones_need_length() -> None:
    text = "Well, honestly, I think so, and then, later, we can talk about it at length."
    clauses = feed(text)
    assert clauses[0] == "Well, honestly,"  # the first comma past first_min_chars (12)
    assert all(len(c) >= 40 or c.endswith(".") for c in clauses[1:])
    assert " ".join(clauses) == text


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence() -> None:
    assert feed("Dr. Smith met J. Doe at 3.5 km from St. Paul. Then left.") == [
        "Dr. Smith met J. Doe at 3.5 km from St. Paul.", "Then left."]


def test_overlong_text_is_cut_at_a_space() -> None:
    settings = Chunking(max_chars=40)
    clauses = feed("word " * 30, settings)
    assert all(len(c) <= 40 for c in clauses) and sum(len(c.split()) for c in clauses) == 30


def test_forced_first_cut_needs_enough_words() -> None:
    chunker = ClauseChunker(Chunking())
    assert list(chunker.push("The capital ")) == []
    assert chunker.cut_at_word(3) is None
    assert list(chunker.push("of France is")) == []
    assert chunker.cut_at_word(3) == "The capital of France"
    assert list(chunker.push(" Paris. ")) == ["is Paris."]


def test_split_text_matches_streaming() -> None:
    text = "Hi, this is Joe. How can I help?"
    assert split_text(text, Chunking()) == feed(text)


def test_forced_cut_never_ends_on_a_word_that_leans_on_the_next() -> None:
    chunker = ClauseChunker(Chunking())
    list(chunker.push("We could go to the movi"))
    assert chunker.cut_at_word(3) == "We could go"
    assert list(chunker.push("es later. ")) == ["to the movies later."]
    chunker = ClauseChunker(Chunking())
    list(chunker.push("I think that the "))
    assert chunker.cut_at_word(3) is None  # "I think" is too short to stand alone
