"""Asking the end-of-turn model about a pause.

The turn detectors of the agent (``turn_detection``) are tried in order, each within its own
``first_byte`` deadline; the first answer is the verdict. None answering is not an error for the
call: the endpointing policy then falls back to the silence rule for that pause.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import structlog

from voiceflow.providers import TurnDetector
from voiceflow.redaction import redact
from voiceflow.runtime.audio_tail import AudioTail
from voiceflow.runtime.deadline import within

log = structlog.get_logger("voiceflow.pause_judge")


class PauseJudge:
    def __init__(self, detectors: Sequence[TurnDetector[Any]], tail: AudioTail) -> None:
        self.detectors = list(detectors)
        self.tail = tail

    async def judge(self, until: float, transcript: str) -> tuple[float, str] | None:
        """The probability that the turn ending at audio time ``until`` is complete, and which
        detector said so; ``None`` if no detector answered."""
        audio = self.tail.until(until)
        for detector in self.detectors:
            try:
                probability = await within(
                    detector.config.timeouts.first_byte, f"{detector.name}: turn_complete",
                    lambda d=detector: d.turn_complete(audio, transcript),  # type: ignore[misc]
                )
            except Exception as exc:  # noqa: BLE001 - the silence rule decides instead
                log.warning("end-of-turn model failed", provider=detector.name,
                            error=redact(f"{type(exc).__name__}: {exc}"))
                continue
            if isinstance(probability, bool) or not isinstance(probability, int | float) \
                    or not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
                log.warning("end-of-turn model gave no probability", provider=detector.name,
                            answer=repr(probability)[:80])
                continue
            return float(probability), detector.name
        return None
