"""Echo defence settings (``turn_taking.barge_in.echo``): the agent's own voice coming back.

Kept apart from :mod:`voiceflow.config.models` so that module stays about the agent file's shape;
the trade-offs behind each default are in docs/turn-taking.md ("Echo").
"""

from __future__ import annotations

from pydantic import Field

from voiceflow.config.base import Strict


class EchoDefence(Strict):
    """How the agent keeps its own voice, coming back through a speakerphone or a sound card
    without echo cancellation, from being taken for the caller."""

    cancel: bool = Field(
        True,
        description="Measure the echo path on each call (the delay and level at which what the "
        "agent played comes back) and subtract the agent's voice from the caller's audio before "
        "the VAD and the recogniser hear it. Costs a few microseconds a frame while the agent's "
        "audio can still be coming back, nothing otherwise. Turn off on lines that are known to "
        "cancel echo already (browsers with WebRTC AEC, most phone networks).",
    )
    max_delay: float = Field(
        0.4,
        ge=0.02,
        le=1.0,
        description="Longest echo path searched, seconds from when a frame was played to when it "
        "comes back (sound-card buffers plus the air between speaker and microphone). Until the "
        "path is measured, it is also how long after the agent stops its echo is expected.",
    )
    tail_margin: float = Field(
        0.1,
        ge=0,
        le=1.0,
        description="Added to the echo path's delay after the agent stops: a caller turn that "
        "began within that window and is made only of the agent's last words (or, without "
        "words, ended within it) is the agent's echo, and is not answered.",
    )
    tail_words: int = Field(
        8,
        ge=1,
        le=50,
        description="How many of the agent's last words an echo's tail is compared with.",
    )
