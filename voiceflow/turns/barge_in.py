"""Whether caller speech over the agent is an interruption: the barge-in policy.

The turn manager owns the mechanics (pause or cancel the reply, flush the transport, cut the
context); this module owns the judgement:

* **voice**: the caller must have been *voiced* for ``min_speech`` (less while the agent is
  still thinking). A detector confirms the end of speech only after its stop window, so a
  timer alone would count that window as speech and let a 0.2 s "mm-hm" interrupt;
* **words**, when the recogniser gives interim transcripts: an interrupt phrase ("stop",
  "wait") interrupts at once; an utterance made only of backchannels ("mhm", "okay") never
  does; words that are the agent's own recent words are its echo, not the caller; and
  ``min_words`` can be required on top of the voiced time.

A verdict of IGNORE (backchannel, echo) or a voice that stopped short lets a paused reply play on
from where it stopped: a false interruption costs the caller a moment of silence, not the reply.

The agent's echo outlives its reply by the echo path's delay: :meth:`BargeInPolicy.echo_tail`
judges a caller "turn" that begins in that window (see :class:`AgentStopped`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from voiceflow.config.models import BargeIn
from voiceflow.runtime.voice_activity import VOICE_GAP

ECHO_SHARE = 0.7
"""An overlap whose words are at least this share of the agent's recent words is its echo."""

_WORD = re.compile(r"[a-z0-9']+")


class Verdict(Enum):
    INTERRUPT = "interrupt"
    WAIT = "wait"
    STOPPED = "stopped"
    """The voice stopped short of the thresholds; the end of speech settles it."""
    IGNORE = "ignore"
    """A backchannel or the agent's own echo: not an interruption, whatever its length."""


@dataclass(slots=True)
class Overlap:
    """Caller speech that started while the agent had a reply in flight."""

    started: float
    check_at: float
    speaking: bool = True
    """The agent was audible (else still thinking: nothing of the reply heard yet)."""
    paused: bool = False
    """The transport held the agent's audio when the speech began."""
    words: str = ""
    """What the recogniser has heard of it so far (interim transcripts)."""
    let_go: bool = False
    """Already judged not an interruption (the agent played on); words may still overturn it."""


@dataclass(frozen=True, slots=True)
class AgentStopped:
    """A reply the caller heard to its end: its echo can still be on the line for a moment."""

    at: float
    """Clock time the last of it was heard."""
    words: list[str] = field(default_factory=list)
    """Its last words (as :func:`words_of` gives them)."""


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


class BargeInPolicy:
    def __init__(self, settings: BargeIn) -> None:
        self.settings = settings
        self._backchannel_words = {w for phrase in settings.backchannels for w in words_of(phrase)}
        self._interrupts = [words_of(phrase) for phrase in settings.interrupt_phrases if words_of(phrase)]

    def _min_speech(self, overlap: Overlap) -> float:
        return self.settings.min_speech if overlap.speaking else self.settings.while_thinking.min_speech

    def _min_words(self, overlap: Overlap) -> int:
        return self.settings.min_words if overlap.speaking else self.settings.while_thinking.min_words

    def on_speech_start(
        self, t: float, now: float, *, interruptible: bool, first_heard: float | None
    ) -> Overlap | None:
        """Speech began at audio time ``t`` over a reply: an overlap to watch, or None to ignore."""
        if not self.settings.enabled or not interruptible:
            return None
        if first_heard is not None and now - first_heard < self.settings.ignore_first:
            return None  # echo warm-up: the agent's own first words may come back on the line
        overlap = Overlap(t, t, speaking=first_heard is not None)
        overlap.check_at = max(now, t + self._min_speech(overlap))
        return overlap

    def holds_at_onset(self, now: float, *, interruptible: bool, first_heard: float | None) -> bool:
        """Whether a voice onset over a reply the caller is hearing should hold its audio before
        the detector has called it speech (``pause_at_onset``): only where speech starting there
        would pause it too."""
        settings = self.settings
        if not (settings.enabled and settings.pause_on_speech and settings.pause_at_onset and interruptible):
            return False
        return first_heard is not None and now - first_heard >= settings.ignore_first

    def onset_hold_over(self, held_at: float, heard_until: float, voiced_until: float) -> bool:
        """A reply held at a voice onset (audio time ``held_at``) with no speech declared yet
        plays on once the voice has stopped, or after ``min_speech`` of it: a voice the detector
        still has not called speech by then could not interrupt by its length anyway."""
        return heard_until - voiced_until > VOICE_GAP or heard_until - held_at >= self.settings.min_speech

    def classify(self, overlap: Overlap, agent_said: str = "") -> Verdict | None:
        """What the words alone say: INTERRUPT (an interrupt phrase), IGNORE (only backchannels,
        or the agent's own echo), or None (nothing decisive, or no words yet)."""
        said = words_of(overlap.words)
        if not said:
            return None
        for phrase in self._interrupts:
            if any(said[i : i + len(phrase)] == phrase for i in range(len(said) - len(phrase) + 1)):
                return Verdict.INTERRUPT
        if all(word in self._backchannel_words for word in said):
            return Verdict.IGNORE
        if self.settings.echo_guard and len(said) >= 2 and agent_said:
            agent_words = set(words_of(agent_said))
            if sum(word in agent_words for word in said) >= ECHO_SHARE * len(said):
                return Verdict.IGNORE
        return None

    def judge(self, overlap: Overlap, heard_until: float, voiced_until: float, agent_said: str = "") -> Verdict:
        """At a check: the words' verdict if they have one; else interrupt once the voiced span
        reaches the thresholds; keep watching while the caller is still voicing; otherwise the
        speech already stopped short, and the end of speech (:meth:`long_enough`) settles it.

        "Still voicing" is judged against the newest audio heard (``heard_until``), not the
        clock: audio a transport delivers late (a WebRTC jitter buffer) is not silence."""
        by_words = self.classify(overlap, agent_said)
        if by_words is not None:
            return by_words
        voiced = voiced_until - overlap.started
        min_speech = self._min_speech(overlap)
        if voiced >= min_speech and self._enough_words(overlap, voiced - min_speech):
            return Verdict.INTERRUPT
        if heard_until - voiced_until <= VOICE_GAP:
            return Verdict.WAIT
        return Verdict.STOPPED

    def _enough_words(self, overlap: Overlap, voiced_past_min: float) -> bool:
        needed = self._min_words(overlap)
        return needed == 0 or len(words_of(overlap.words)) >= needed or voiced_past_min >= self.settings.words_wait

    def long_enough(self, overlap: Overlap, speech_end: float, agent_said: str = "") -> bool:
        """At the end of the overlapping speech: was it an interruption after all?"""
        by_words = self.classify(overlap, agent_said)
        if by_words is not None:
            return by_words is Verdict.INTERRUPT
        voiced = speech_end - overlap.started
        min_speech = self._min_speech(overlap)
        return voiced >= min_speech and self._enough_words(overlap, voiced - min_speech)

    def echo_tail(
        self, stopped: AgentStopped, delay: float | None, start: float, voiced_end: float | None, text: str
    ) -> bool:
        """Whether a caller "turn" (speech from ``start`` to ``voiced_end``, heard as ``text``) is
        the agent's own voice still coming back after it stopped: it began within the echo
        path's ``delay`` (``max_delay`` while unmeasured) plus ``tail_margin`` of the stop, and
        its words are all among the agent's last ``tail_words`` -- or, with no words, its voice
        also ended in that window. A caller who starts right after the agent says words of
        their own, or speaks past the window, and is heard."""
        echo = self.settings.echo
        if not self.settings.echo_guard:
            return False
        window_end = stopped.at + (echo.max_delay if delay is None else delay) + echo.tail_margin
        if start > window_end:
            return False
        said = words_of(text)
        if said:
            last = set(stopped.words[-echo.tail_words :])
            return all(word in last for word in said)
        return voiced_end is not None and voiced_end <= window_end
