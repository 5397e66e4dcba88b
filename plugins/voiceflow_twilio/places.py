"""Places held for calls between the webhook's answer and the media stream's start.

Admission happens at the webhook, where a full agent can still refuse the call the telephone
way (a busy tone, unanswered and unbilled). The place it takes is held, by call SID, until the
stream for that call starts and claims it, a second or so later. A stream that never comes
(the caller hung up while ringing) gives its place back after ``ttl`` seconds; the sweep runs
whenever a call arrives, so nothing has to wake up for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from voiceflow.serving.api import CallSlot


class HeldPlaces:
    def __init__(self, ttl: float, now: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._now = now
        self._held: dict[str, tuple[CallSlot, float]] = {}

    def hold(self, call_sid: str, slot: CallSlot) -> None:
        self.sweep()
        previous = self._held.pop(call_sid, None)
        if previous is not None:
            previous[0].release()  # Twilio retried the webhook: one place per call
        self._held[call_sid] = (slot, self._now() + self._ttl)

    def claim(self, call_sid: str) -> CallSlot | None:
        """The place held for ``call_sid``, now the stream's to release; None if there is none
        (it expired, or the webhook was answered by another instance)."""
        self.sweep()
        held = self._held.pop(call_sid, None)
        return None if held is None else held[0]

    def sweep(self) -> None:
        now = self._now()
        for call_sid, (slot, expires) in list(self._held.items()):
            if expires < now:
                del self._held[call_sid]
                slot.release()

    def release_all(self) -> None:
        for slot, _ in self._held.values():
            slot.release()
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)
