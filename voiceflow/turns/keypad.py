"""Keypad presses (DTMF) as part of the conversation.

A key pressed on its own may switch the conversation state (``keypad.states``, e.g. ``0`` for an
operator profile); otherwise keys gather into an *entry* (an account number, a menu choice) that
ends at an end key, at ``max_digits``, or ``digit_timeout`` after the last key, and then reaches
the LLM as the caller's words (``keypad.says``). The digits are never logged (they may be a PIN).
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceflow.config.models import Keypad


@dataclass(frozen=True, slots=True)
class SwitchState:
    state: str
    key: str


@dataclass(frozen=True, slots=True)
class EntryDone:
    keys: str
    started: float


@dataclass(frozen=True, slots=True)
class EntryGoesOn:
    until: float
    """When the entry is over unless another key comes."""


KeypadOutcome = SwitchState | EntryDone | EntryGoesOn


class KeypadEntry:
    def __init__(self) -> None:
        self.keys = ""
        self.started = 0.0

    def press(self, key: str, t: float, settings: Keypad) -> KeypadOutcome:
        if not self.keys and key in settings.states:
            return SwitchState(settings.states[key], key)
        if not self.keys:
            self.started = t
        self.keys += key
        if key in settings.end_keys or len(self.keys) >= settings.max_digits:
            return self._done()
        return EntryGoesOn(t + settings.digit_timeout)

    def timed_out(self) -> EntryDone | None:
        return self._done() if self.keys else None

    def _done(self) -> EntryDone:
        done = EntryDone(self.keys, self.started)
        self.keys = ""
        return done
