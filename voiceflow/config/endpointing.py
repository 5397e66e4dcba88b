"""When the caller's turn is over: the ``turn_taking.endpointing`` part of the agent file.

Kept apart from :mod:`voiceflow.config.models` because endpointing has grown several policies of
its own (the end-of-turn model, transcript rules, adaptive silence, late audio); each knob here is
explained, with what it trades against latency, in docs/turn-taking.md.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from voiceflow.config.base import Strict


class TurnModel(Strict):
    """How the end-of-turn model's verdict on a pause moves the endpoint (only with
    `turn_detection` providers)."""

    threshold: float = Field(
        0.5, ge=0, le=1, description="A pause the model scores at least this is a finished turn."
    )
    finished_silence: float = Field(
        0.2,
        ge=0,
        le=5,
        description="A turn judged finished ends after this much silence (sooner than min_silence).",
    )
    unfinished_silence: float = Field(
        2.0,
        ge=0.05,
        le=10,
        description="A turn judged unfinished waits this long for the caller to go on, then ends anyway.",
    )
    verdict_wait: float = Field(
        0.3,
        ge=0,
        le=5,
        description="Longest wait for a slow verdict past the silence rule's own deadline; then the "
        "silence rule decides.",
    )


class TranscriptRule(Strict):
    """A pause after a transcript matching ``pattern`` must last ``silence`` seconds."""

    pattern: str = Field(
        min_length=1,
        max_length=500,
        description="Python regular expression, searched in the turn's transcript so far, e.g. "
        "'(?i)\\bextension\\s*$'.",
    )
    silence: float = Field(ge=0, le=10, description="Seconds of silence the turn then needs.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        return pattern


class TranscriptRules(Strict):
    """What the words so far say about whether the caller is done (see docs/turn-taking.md)."""

    enabled: bool = Field(True, description="Use the built-in rules and the extra ones.")
    unfinished_silence: float = Field(
        1.2,
        ge=0.05,
        le=10,
        description="Silence needed after a transcript that sounds unfinished: a trailing 'and', "
        "'to', 'um'…, a number or a spelling in progress, a trailing comma.",
    )
    question_silence: float = Field(
        0.3, ge=0, le=10, description="Silence needed after a complete question ('…?')."
    )
    extra: list[TranscriptRule] = Field(
        default_factory=list, max_length=100, description="Your own rules, checked with the built-in ones."
    )


class AdaptiveSilence(Strict):
    """The silence rule's wait, raised for a caller whose own mid-turn pauses are longer than
    ``min_silence`` (learned during the call; never below ``min_silence``)."""

    enabled: bool = Field(
        True,
        description="Learn this caller's pauses: a pause the caller went on after (a reply begun "
        "and dropped, or a pause shorter than the wait) raises the wait toward a high percentile "
        "of their pauses plus a margin. A caller who does not pause is never slowed.",
    )
    percentile: float = Field(
        0.9,
        ge=0.5,
        le=1,
        description="Share of the caller's remembered pauses the wait should outlast.",
    )
    margin: float = Field(
        0.15, ge=0, le=2, description="Seconds added to that percentile (a caller's pauses vary)."
    )
    max_silence: float = Field(
        1.2,
        ge=0.05,
        le=10,
        description="The most the adaptation raises the wait to, seconds (a caller who pauses "
        "longer is answered at this, and taught the agent nothing more).",
    )
    half_life: float = Field(
        3.0,
        gt=0,
        le=100,
        description="Caller turns after which a learned pause counts half: the wait decays back "
        "to min_silence when the caller stops pausing.",
    )


class Endpointing(Strict):
    """When the caller's turn is over. Silence is measured in the caller's audio, from the last
    voiced sample."""

    min_silence: float = Field(
        0.45, ge=0.05, le=5, description="Silence after speech before the turn may end, seconds."
    )
    max_wait: float = Field(
        2.5,
        ge=0.1,
        le=10,
        description="After speech ends, the longest wait for the final transcript before "
        "answering with what is known (never stall on a slow recogniser).",
    )
    min_speech: float = Field(
        0.15, ge=0, le=5, description="Shorter bursts of speech are noise, not a turn (coughs, clicks)."
    )
    preemptive: bool = Field(
        True,
        description="Start the reply as soon as the final transcript is in, before min_silence "
        "has passed; its audio is held until the turn is confirmed over, and it is dropped "
        "unheard if the caller goes on.",
    )
    max_delivery_gap: float = Field(
        1.0,
        ge=0.02,
        le=30,
        description="A pause is long enough only once its audio has arrived (late or bursty "
        "frames are waited for, not taken for silence); a line that delivers no audio at all "
        "for this long is taken as silent, so a dead transport never stalls the call, seconds.",
    )
    adaptive: AdaptiveSilence = Field(
        AdaptiveSilence(), description="Raise the silence rule's wait for a caller who pauses long."
    )
    turn_model: TurnModel = Field(
        TurnModel(), description="How the end-of-turn model's verdicts move the endpoint."
    )
    transcript_rules: TranscriptRules = Field(
        TranscriptRules(), description="Longer or shorter pauses depending on the words so far."
    )
