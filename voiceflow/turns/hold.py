"""Waiting on hold: a caller who said "hold on", or whose line plays music, is waited for quietly.

Two things would otherwise go wrong, and both are what callers of voice agents complain about:
the agent answers the hold music (a recogniser hears lyrics, or nothing, and the agent asks
"Sorry, I didn't catch that?" into the music), and the silence policy re-prompts and then hangs
up on someone who only asked for a minute. While on hold, the silence timer runs to
``hold.max_seconds`` instead of ``silence.reprompt_after``; any caller turn that is answered
ends the hold.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import structlog

from voiceflow.config.models import HoldPolicy
from voiceflow.runtime.music import MusicVerdict, judge_music

log = structlog.get_logger("voiceflow.hold")

MUSIC_CHECK_SECONDS = 3.0
"""How far into a caller turn it is judged for music while it goes on: enough frames for the
detector (it needs one second; three keep speech's pauses in view), and soon enough that "I'll
hold." is heard as the music starts. It costs under a millisecond of the event loop (0.8 ms
median for these 3 s on the 2-core test machine), once per caller turn, and only when the agent
file has a ``music_line`` still to say."""


class HoldWatch:
    def __init__(self, settings: Callable[[], HoldPolicy]) -> None:
        self._settings = settings
        self.until: float | None = None
        """While set, the agent is on hold until then."""
        self._music_said = False

    @property
    def settings(self) -> HoldPolicy:
        return self._settings()

    def asks_to_hold(self, text: str) -> bool:
        words = " ".join(re.findall(r"[a-z']+", text.lower()))
        return _any_phrase(tuple(self.settings.phrases)).search(words) is not None

    def music(self, pcm: bytes) -> MusicVerdict | None:
        """The music verdict on a caller turn's audio, when detection is on and it is music."""
        if not self.settings.detect_music:
            return None
        verdict = judge_music(pcm)
        return verdict if verdict is not None and verdict.music else None

    def music_check_at(self, start: float) -> float | None:
        """When to judge a caller turn begun at ``start`` for music while it goes on (``None``:
        no line to say, so the music can wait for its end to be judged, as it always is)."""
        settings = self.settings
        if not settings.detect_music or settings.music_line is None or self._music_said:
            return None
        return start + MUSIC_CHECK_SECONDS

    def hold(self, now: float, seconds: float | None = None) -> None:
        """Wait quietly from ``now`` for ``seconds`` (default ``hold.max_seconds``; a menu's is
        ``ivr.max_wait``)."""
        seconds = self.settings.max_seconds if seconds is None else seconds
        if self.until is None:
            log.info("on hold", seconds=seconds)
        self.until = max(self.until or now, now + seconds)

    def music_line(self) -> str | None:
        """The line to say once when music starts on hold (if the agent file has one)."""
        if self._music_said or self.settings.music_line is None:
            return None
        self._music_said = True
        return self.settings.music_line

    def released(self) -> None:
        """The caller is back (a turn that is answered)."""
        if self.until is not None:
            log.info("off hold")
        self.until, self._music_said = None, False

    def silence_deadline(self, now: float, reprompt_after: float) -> float:
        if self.until is not None and self.until > now:
            return self.until
        self.until = None
        return now + reprompt_after


@functools.lru_cache(maxsize=64)
def _any_phrase(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for every hold phrase, each as whole words, compiled once per phrase list
    (asked at the end of every caller turn of every call)."""
    if not phrases:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(rf"\b{re.escape(phrase.lower())}\b" for phrase in phrases))
