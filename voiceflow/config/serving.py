"""The agent file's ``serving:`` block: limits and drain for ``voiceflow serve``.

Per agent, because they are about the agent's calls: how many at once its providers can carry,
how big a client's message may be, how long a silent connection is kept, and what the agent says
when a deploy ends a call. Where and how the process listens (host, port, access token) is the
operator's choice and lives on the command line instead.
"""

from __future__ import annotations

from pydantic import Field

from voiceflow.config.base import Strict


class Drain(Strict):
    """What happens to calls in progress when the process is asked to stop (SIGTERM)."""

    grace: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="Seconds calls in progress may go on after SIGTERM before the agent ends them.",
    )
    goodbye: str = Field(
        "I'm sorry, I have to end our call now. Goodbye!",
        min_length=1,
        description="Said to each call still going when the grace is over, once the agent has "
        "finished its sentence.",
    )
    goodbye_timeout: float = Field(
        15.0,
        gt=0,
        le=600,
        description="Longest wait for the agent's sentence to end and the goodbye to be heard; "
        "then the call is cut.",
    )


class Serving(Strict):
    """Limits of this agent's calls when it is served (``voiceflow serve``)."""

    max_sessions: int = Field(
        20, ge=1, le=100_000, description="Calls at once; more are refused politely (busy, retry later)."
    )
    max_loop_lag: float | None = Field(
        0.1,
        gt=0,
        le=60,
        description="Refuse new calls (busy) while the process's event loop runs this many seconds "
        "late (95th percentile over the last 2 s, from a 10 ms ticker): past that point every call "
        "on it hears late audio, and admitting more takes them all down. Each such overload also "
        "sets the process's learned call limit (90 % of its calls then; it grows back while they "
        "keep up). null: admit up to max_sessions whatever the lag.",
    )
    max_audio_lag: float | None = Field(
        0.25,
        gt=0,
        le=60,
        description="Refuse new calls (busy) while the calls in progress take their caller's audio "
        "this many seconds late (the median over the calls of how long each one's newest frame "
        "waited between arriving and reaching the VAD). It sees overload the loop's lag does not: "
        "a loop that keeps up while the VAD's worker threads, starved of a core, do not. It sets "
        "the learned call limit as max_loop_lag does. null: do not look (with both null, no limit "
        "is learned).",
    )
    max_message_bytes: int = Field(
        65_536,
        ge=1024,
        le=16 * 1024 * 1024,
        description="The largest message a client may send; a bigger one ends that call only.",
    )
    idle_timeout: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="Seconds without any message from a client before its call is ended as vanished.",
    )
    drain: Drain = Field(Drain(), description="Ending calls in progress when the process stops.")
