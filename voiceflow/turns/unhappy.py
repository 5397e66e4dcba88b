"""The unhappy-path script: which fixed line the agent says when things do not go to plan.

The turn manager notices *that* something went wrong (silence, a failed stage, an empty
transcript, the time limit); this policy decides *what the caller hears*, from
``unhappy_paths`` in the agent file, so the wording and the order of re-prompts live in one place
and the manager only says the :class:`Line` it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceflow.config.models import UnhappyPaths


@dataclass(frozen=True, slots=True)
class Line:
    """A fixed line to say: its kind in the timeline (a ``goodbye`` ends the call once heard), its
    words, whether it may be cut off, and the failure it answers (for the timeline)."""

    kind: str
    text: str
    interruptible: bool = True
    failure: str | None = None


class UnhappyScript:
    def __init__(self, paths: UnhappyPaths) -> None:
        self.paths = paths
        self._reprompts = 0

    def caller_answered(self) -> None:
        """A real turn happened: the next silence starts the re-prompts from the first one."""
        self._reprompts = 0

    def on_silence(self) -> Line | None:
        """The caller has been quiet for ``silence.reprompt_after``: the next re-prompt, then the
        goodbye; ``None`` to keep listening quietly."""
        policy = self.paths.silence
        if self._reprompts < len(policy.reprompts):
            self._reprompts += 1
            return Line("reprompt", policy.reprompts[self._reprompts - 1])
        if policy.hang_up:
            return Line("goodbye", policy.goodbye)
        return None

    def for_caller_turn(self, text: str, failure: str | None, confidence: float | None = None) -> Line | None:
        """The caller's turn is over: ``None`` to answer it, else the line that asks again."""
        if failure is not None:
            return self.apology(failure)
        if not text:
            return Line("unclear", self.paths.unclear)
        if confidence is not None and confidence < self.paths.min_confidence:
            return Line("unclear", self.paths.unclear,
                        failure=f"recogniser confidence {confidence:.2f} below {self.paths.min_confidence:g}")
        return None

    def after_failed_reply(self, kind: str, failure: str) -> Line | None:
        """A reply failed: apologise, unless the failed line was itself the apology or a goodbye
        (saying it again would fail the same way)."""
        if kind in ("apology", "goodbye"):
            return None
        return self.apology(failure)

    def apology(self, failure: str) -> Line:
        return Line("apology", self.paths.stage_failure, failure=failure)

    def time_is_up(self) -> Line:
        return Line("goodbye", self.paths.max_call_goodbye, interruptible=False)

    def unavailable(self, reason: str) -> Line:
        """A stage cannot serve this call at all."""
        return Line("goodbye", self.paths.unavailable, interruptible=False, failure=reason)
