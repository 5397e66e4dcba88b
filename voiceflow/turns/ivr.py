"""Recorded phone menus (IVR): recognised from their wording, and handled as the agent file says.

A menu is not a person: "For sales, press one. For support, press two." answered by the LLM
("Sure, I can help with sales!") is the agent talking to a machine that is waiting for a key. The
recogniser's transcript is what we have, and menus are worded in a way people do not talk:
"for <option>, press <key>", "press <key> for <option>", "para español", "please listen
carefully as our menu options have changed", "your call is important to us". A bare "press one"
is not enough (a person asks "should I press one?"). Audio cues (a recording's steady level, a
prompt that does not stop when talked over) were considered and left out: the wording is
decisive on every menu we tried, and the talked-over cue needs the agent to talk over the menu
first, which is the failure itself.

A menu's opening ("Thank you for calling Acme.") often ends a caller turn of its own, before
any option: a company greeting where a turn begins counts as prompt wording too. A receptionist
who says one is always about to go on ("…how can I help you?"), and that next turn is answered,
so waiting costs a person nothing; answering the recording would talk over the menu.

The decision, in order: a key announced for the option the file is calling for (``choose``), or
the file's fixed key (``press``, when there is no ``choose``); else the file's line (``say``);
else a quiet wait for the person behind the menu. Keys are pressed at most ``max_presses``
times per call. After any of them the agent waits quietly (no re-prompt, no hang-up) for up to
``max_wait``; the first turn that is not a menu (a person picking up) is answered normally.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from voiceflow.config.ivr import IvrPolicy

DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "star": "*", "asterisk": "*", "pound": "#", "hash": "#",
}
_KEY = r"(?:[0-9*#]|" + "|".join(DIGIT_WORDS) + r")"
_PRESS = rf"(?:press|dial|select|enter|push)(?: the)?(?: number| key)?\s+(?P<key>{_KEY})(?:\s+key)?"
_OPTION = r"(?P<option>[a-z0-9'][a-z0-9' ]*?)"
OPTION_FIRST = re.compile(rf"\b(?:for|to)\s+{_OPTION}\s*,?\s*(?:please\s+)?{_PRESS}\b")
""""For sales, press one." / "To speak to an agent, press 0." """
KEY_FIRST = re.compile(rf"\b{_PRESS}\s*,?\s*(?:for|to)\s+{_OPTION}(?=\s*(?:[.,;!?]|$|\b(?:or|press|dial)\b))")
""""Press two for support." / "Press 0 to speak to an operator." """
MENU_WORDING = (
    r"\bpara espa(?:ñ|n)ol\b",
    r"\bmenu options have (?:recently )?changed\b",
    r"\byour call (?:is|may be) (?:very )?(?:important|recorded|monitored)\b",
    r"\bplease (?:stay|remain) on the line\b",
    r"\bthe next available (?:agent|representative)\b",
    r"\b(?:press|say) or (?:say|press)\b",
    r"^(?:hello\W+)?(?:thank you|thanks) for calling\b",
    r"^(?:hello\W+)?welcome to\b",
)
"""Wording of recorded prompts (menus, queue announcements), searched in the normalised text.
A bare "press one" is not in it: a person says that too ("should I press one?"); a menu offers
options ("for sales, press one"), which :func:`menu_options` finds. Company greetings count
only where a turn begins ("you've reached the wrong person" is a person)."""
_TRAILING = re.compile(r"\b(?:for|to)\s+")
IN_BAND, OUT_OF_BAND = "in band", "out of band"


class IvrAction(str, Enum):
    PRESS = "press"
    SAY = "say"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class MenuOption:
    option: str
    key: str


@dataclass(frozen=True, slots=True)
class IvrDecision:
    """What the agent did about one recorded prompt: the record in the turn's timeline."""

    action: IvrAction
    options: tuple[MenuOption, ...] = ()
    """The options the prompt announced, as parsed."""
    keys: str = ""
    chosen: str | None = None
    """The option the keys were pressed for (``None``: a fixed key, or no key)."""
    why: str = ""
    sent: str = ""
    """How the keys went: ``"in band"`` (tones in the agent's audio) or ``"out of band"``."""

    @property
    def turn_kind(self) -> str:
        """The agent turn it makes in the timeline: ``keys`` when keys were pressed, else ``ivr``."""
        return "keys" if self.action is IvrAction.PRESS else "ivr"

    @property
    def outcome(self) -> str:
        """For a turn without audio: keys sent out of band are done; a quiet wait is ignored."""
        return "completed" if self.action is IvrAction.PRESS else "ignored"

    def describe(self) -> str:
        listed = ", ".join(f"{o.option}={o.key}" for o in self.options) or "none parsed"
        what = {
            IvrAction.PRESS: f"pressed {self.keys}" + (f" for {self.chosen!r}" if self.chosen else ""),
            IvrAction.SAY: "said its line",
            IvrAction.WAIT: "waited quietly",
        }[self.action]
        return f"recorded menu (options: {listed}): {what}" + (f" ({self.why})" if self.why else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "options": [{"option": o.option, "key": o.key} for o in self.options],
            "keys": self.keys,
            "chosen": self.chosen,
            "why": self.why,
            "sent": self.sent,
        }


def normalise(text: str) -> str:
    """Lower case, words and the punctuation that separates menu options; nothing else."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9ñ'*#.,;!? ]+", " ", text)
    text = re.sub(r"\s*([.,;!?])\s*", r"\1 ", text)
    return re.sub(r"\s+", " ", text).strip()


def key_of(word: str) -> str:
    return DIGIT_WORDS.get(word, word)


def menu_options(text: str) -> list[MenuOption]:
    """The options a prompt announces, in the order it says them (one per key)."""
    said = normalise(text)
    matches = {pattern: list(pattern.finditer(said)) for pattern in (OPTION_FIRST, KEY_FIRST)}
    # Without punctuation "for sales press one for support press two" reads both ways; the
    # wording the prompt uses more often is the one it uses ("press 2 for X, press 3 for Y").
    order = sorted(matches, key=lambda pattern: -len(matches[pattern]))
    found: list[tuple[int, MenuOption]] = []
    taken: list[tuple[int, int]] = []
    for pattern in order:
        for match in matches[pattern]:
            span = match.span()
            if any(start < span[1] and span[0] < end for start, end in taken):
                continue
            taken.append(span)
            option = _TRAILING.split(match.group("option"))[-1].strip(" '")
            if option:
                found.append((match.start(), MenuOption(option, key_of(match.group("key")))))
    found.sort(key=lambda item: item[0])
    options: list[MenuOption] = []
    for _, option in found:
        if all(option.key != o.key for o in options):
            options.append(option)
    return options


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9ñ']+", text.lower())


def _contains(haystack: list[str], needle: list[str]) -> bool:
    return bool(needle) and any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def matching(options: list[MenuOption], choose: list[str]) -> MenuOption | None:
    """The option for the first goal (in the file's order of preference) that one names."""
    for goal in choose:
        wanted = _words(goal)
        for option in options:
            offered = _words(option.option)
            if _contains(offered, wanted) or _contains(wanted, offered):
                return option
    return None


@dataclass
class IvrWatch:
    """One call's menu handling: recognises prompts and decides, counting the keys pressed."""

    settings: Callable[[], IvrPolicy]
    presses: int = 0
    _extra: tuple[str, ...] = ()
    _compiled: list[re.Pattern[str]] = field(default_factory=list)

    def _patterns(self) -> list[re.Pattern[str]]:
        phrases = tuple(self.settings().phrases)
        if not self._compiled or phrases != self._extra:
            self._extra = phrases
            self._compiled = [re.compile(p) for p in (*MENU_WORDING, *phrases)]
        return self._compiled

    def is_menu(self, text: str) -> bool:
        """Whether ``text`` is worded like a recorded prompt (and detection is on)."""
        if not self.settings().detect or not text.strip():
            return False
        said = normalise(text)
        return any(pattern.search(said) for pattern in self._patterns()) or bool(menu_options(text))

    def decide(self, text: str) -> IvrDecision:
        """What to do about the prompt ``text`` (then :meth:`act` on it)."""
        policy = self.settings()
        options = tuple(menu_options(text))
        keys, chosen, why = None, None, ""
        if policy.choose:
            option = matching(list(options), policy.choose)
            if option is not None:
                keys, chosen = option.key, option.option
            else:
                why = "no option the agent is calling for"
        elif policy.press is not None:
            keys = policy.press.upper()
        if keys is not None and self.presses >= policy.max_presses:
            keys, why = None, f"keys already pressed {self.presses} times (max_presses)"
        if keys is not None:
            return IvrDecision(IvrAction.PRESS, options, keys, chosen, why)
        if policy.say is not None:
            return IvrDecision(IvrAction.SAY, options, why=why)
        return IvrDecision(IvrAction.WAIT, options, why=why)

    def act(self, decision: IvrDecision, out_of_band: Callable[[str], bool]) -> IvrDecision:
        """``decision`` carried out as far as keys go: sent out of band if the transport can
        (``CallTransport.send_dtmf``), else left for the caller to play in band; counted."""
        if decision.action is not IvrAction.PRESS:
            return decision
        self.presses += 1
        return replace(decision, sent=OUT_OF_BAND if out_of_band(decision.keys) else IN_BAND)
