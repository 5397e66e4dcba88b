"""How far behind real time the calls' own audio is taken: the second measure of overload.

The event loop's lag (:mod:`voiceflow.serving.loop_lag`) sees a loop that cannot keep up. It
does not see a process whose loop keeps up while the calls' audio still falls behind: the VAD's
worker threads starved of a core (by the loop, by other processes on the machine), so every
call's frames wait for their windows' verdicts and pile up in the transports' buffers. Measured
with ``benchmarks/soak.py`` on a slower 2-core machine: the loop at 70 % of a core, its lag under
the admission threshold, while replies came seconds late and most calls were lost, their
connections closed by keepalive timeouts behind the full buffers, as new callers kept being
admitted.

So admission also reads this: for each call in progress, how long its newest caller frame
waited between arriving at the transport and reaching the voice activity detector
(:attr:`Session.caller_audio_lag <voiceflow.runtime.session.Session.caller_audio_lag>`, read off
fields the detector keeps anyway: nothing is added per frame), and refuses new calls while the
median over the calls is above ``serving.max_audio_lag``. The median, not a high percentile:
overload delays every call of the process alike, while one call's own frames can look late for
reasons of its own (a phone network's jitter, for transports that place frames by the sender's
timestamps), which must not close the process to everyone else.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager

from voiceflow.runtime.session import Session


class AudioLag:
    """The calls in progress whose audio lag admission reads."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()

    @contextmanager
    def tracking(self, session: Session) -> Iterator[None]:
        """Count ``session`` while the block runs (the length of its call)."""
        self._sessions.add(session)
        try:
            yield
        finally:
            self._sessions.discard(session)

    def recent(self) -> float:
        """The median (the lower one) over the calls in progress of how late each one's newest
        caller frame reached its VAD, in seconds (0 with no calls)."""
        if not self._sessions:
            return 0.0
        return statistics.median_low(session.caller_audio_lag for session in self._sessions)
