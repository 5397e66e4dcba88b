"""Silence is measured in the caller's audio, not on the clock: late and bursty frames.

A pause's deadline is an *audio* time (the last voiced sample plus the wait). On a clean line
the audio arrives as it is spoken, so the clock reaching the deadline means the audio has too.
Over a real network it does not: a jitter buffer holds frames back, a WebSocket client sends
100 ms clumps, a Wi-Fi hiccup delays 0.3 s of speech and then delivers it in one burst. Taking
the clock for the audio then takes "nothing has arrived yet" for "the caller is silent", and the
caller's next words, already spoken and on their way, land on top of an answer to half their
sentence.

So a pause is long enough only once the frames received (each stamped with when it was spoken,
``VoiceActivity.heard_until``) reach its deadline. Silent frames count as silence; missing frames
count as nothing. Missing frames cannot be waited for forever, though: a transport that died
without saying so would stall the agent. When no frame at all has arrived for
``max_delivery_gap`` seconds (``VoiceActivity.heard_at``), the line is taken as silent from its
last frame on and the deadline is judged on the clock.

The same goes for the detector's own delay: its start-of-speech edge comes only after a few
voiced frames (its start window). When the newest audio heard is voiced, the caller may be
starting to speak again and the edge is on its way, so the pause is not judged over on that look
(a frame or two later it is clear either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SLACK = 0.001
"""Rounding allowed between a deadline and the end of the frame that covers it."""


class Hearing(Protocol):
    """How far the caller's audio has been received (the call's VAD keeps it)."""

    @property
    def heard_until(self) -> float:
        """Audio time just after the newest frame received."""
        ...

    @property
    def heard_at(self) -> float:
        """Clock time the newest frame was received."""
        ...

    @property
    def voiced_until(self) -> float:
        """Audio time just after the last frame the detector judged voiced."""
        ...


@dataclass(frozen=True, slots=True)
class Heard:
    """The pause has lasted until the deadline in the audio received (or, ``gap`` set: the line
    has delivered nothing for that long and the clock decided)."""

    gap: float | None = None


@dataclass(frozen=True, slots=True)
class NotYet:
    """The audio up to the deadline has not all arrived: look again at ``check_at``."""

    check_at: float
    missing: float
    """Seconds of audio before the deadline still to come."""


def silence_heard(deadline: float, hearing: Hearing, now: float, max_gap: float) -> Heard | NotYet:
    """Whether the pause has lasted until audio time ``deadline`` *in the audio received*, at
    clock time ``now``; a line silent in delivery for ``max_gap`` counts as silent in audio."""
    heard_until = hearing.heard_until
    if heard_until >= deadline - SLACK:
        if hearing.voiced_until >= heard_until - VOICED_RECENT and now - deadline < max_gap:
            return NotYet(now + RECHECK, 0.0)  # a voice beginning, its edge not yet confirmed
        return Heard()
    gap = now - hearing.heard_at
    if gap >= max_gap - SLACK:
        return Heard(gap)
    missing = deadline - heard_until
    # A line in step covers the deadline ``missing`` from now; a burst may bring it sooner, so
    # look again within a frame or two, and at the latest when the gap limit is reached.
    return NotYet(min(now + min(missing, RECHECK), hearing.heard_at + max_gap), missing)


RECHECK = 0.02
"""Longest wait between looks while audio is late (a frame: bursts arrive in whole frames)."""

VOICED_RECENT = 0.04
"""The newest audio counts as voiced when the detector's last voiced sample is this close to the
end of what was heard (two frames: a detector scores windows of up to 32 ms)."""
