"""``unhappy_paths.ivr``: what the agent does when a recorded phone menu answers instead of a person.

An agent that calls out (or is transferred) often reaches an IVR first: "Thank you for calling
Acme. For sales, press one. For support, press two." Answering it as if a person had spoken is
the failure; the file says what to do instead, and the reasoning behind each default is in
docs/turn-taking.md ("IVR menus").
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from voiceflow.config.base import Strict

KEYS_PATTERN = r"^[0-9*#A-Da-d]{1,32}$"


class IvrPolicy(Strict):
    """Recorded menus: recognised from their wording, never answered by the LLM."""

    detect: bool = Field(
        True,
        description="Recognise a caller turn as a recorded menu from its wording (\"press one\", "
        "\"for sales, press 1\", \"para español\", \"our menu options have changed\"…) and do what "
        "this section says instead of answering it. false: every turn goes to the LLM.",
    )
    phrases: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="More regular expressions (searched in the lower-cased transcript) that mark a "
        "turn as a recorded prompt, besides the built-in menu wording.",
    )
    choose: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="What the agent is calling for, in order of preference (\"technical support\", "
        "\"support\"): the key the menu announces for the first option that matches one is pressed "
        "(\"for support, press two\" and \"press 2 for support\" both give 2). A menu that offers "
        "none of them is waited through quietly (it may go on, or repeat).",
    )
    press: str | None = Field(
        None,
        pattern=KEYS_PATTERN,
        description="Keys pressed at every menu when `choose` is empty (\"0\" for an operator). "
        "Unset: no fixed key.",
    )
    say: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Said to a menu when no key is to be pressed (speech-driven menus: "
        "\"Representative.\"). Unset: the agent stays quiet and waits for a person.",
    )
    max_presses: int = Field(
        5,
        ge=1,
        le=100,
        description="The most times keys are pressed in one call: a menu that keeps coming back "
        "(the key was refused) is then waited through quietly instead of looping.",
    )
    max_wait: float = Field(
        600,
        gt=0,
        le=7200,
        description="Seconds of quiet waiting after a menu (menus, queues, hold music) before the "
        "usual silence re-prompts resume.",
    )

    @field_validator("phrases")
    @classmethod
    def _compile(cls, phrases: list[str]) -> list[str]:
        for index, phrase in enumerate(phrases):
            try:
                re.compile(phrase)
            except re.error as exc:
                raise ValueError(f"phrases[{index}] {phrase!r} is not a valid regular expression ({exc})") from None
        return phrases

    @field_validator("choose")
    @classmethod
    def _words(cls, choose: list[str]) -> list[str]:
        for index, option in enumerate(choose):
            if not re.search(r"[A-Za-z0-9]", option):
                raise ValueError(f"choose[{index}] {option!r} has no words to match a menu option with")
        return choose
