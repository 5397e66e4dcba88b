"""The runtime side of the serving seam: admission and call running for one served agent.

:class:`ServerState` is the one piece of state the agents of a process share (models loading,
draining); it is an object handed around, not a module global, so tests can run several servers
in one process.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from voiceflow.config.compose import AgentConfig
from voiceflow.metrics.calls import CallObserver, ObservedCall, tell_refused
from voiceflow.providers import CallTransport
from voiceflow.runtime.runner import CallRunner
from voiceflow.runtime.session import Session
from voiceflow.serving.api import CallSlot, RefusalReason, Refused, ServingLimits, SessionHost
from voiceflow.serving.audio_lag import AudioLag
from voiceflow.serving.call_ceiling import CallCeiling
from voiceflow.serving.events import TurnRelay
from voiceflow.serving.loop_lag import LoopLag

BUSY_RETRY = 2.0
"""Seconds a refused caller is told to wait when the agent is at its limit."""
STARTING_RETRY = 5.0


class ServerState:
    """Readiness of the whole process: not ready while any agent's models load or while draining."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.loading: set[str] = set()
        self.draining = False
        self.lag = LoopLag()
        """How late the event loop runs (the server runs its probe; admission reads it)."""
        self.audio_lag = AudioLag()
        """How late the calls in progress take their caller's audio (admission reads it)."""
        self.ceiling = CallCeiling()
        """How many calls the process carries, learned from the two above."""
        self.calls = 0
        """Places held across the process's agents (they share its loop and cores)."""

    @property
    def ready(self) -> bool:
        return not self.draining and not self.loading

    def token_ok(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())


class AgentHost(SessionHost):
    """Admits calls for one agent within its ``serving.max_sessions`` and runs them on its
    :class:`~voiceflow.runtime.runner.CallRunner`."""

    def __init__(
        self, agent: AgentConfig, runner: CallRunner, state: ServerState, observers: Sequence[CallObserver] = ()
    ) -> None:
        self.agent_name = agent.name
        serving = agent.serving
        self.limits = ServingLimits(serving.max_sessions, serving.max_message_bytes, serving.idle_timeout)
        self.max_loop_lag = serving.max_loop_lag
        self.max_audio_lag = serving.max_audio_lag
        self.runner = runner
        self.state = state
        self.held = 0
        """Places taken: admitted calls, from admission until their handler let go."""
        self.observers = observers
        """Told of every call and refusal (metrics, traces: :mod:`voiceflow.metrics.calls`)."""

    def admit(self) -> CallSlot:
        try:
            return self._admit()
        except Refused as refused:
            tell_refused(self.observers, self.agent_name, refused.reason.value)
            raise

    def _admit(self) -> CallSlot:
        name = self.agent_name
        if self.state.draining:
            raise Refused(RefusalReason.DRAINING, f"{name} is shutting down here; call another instance", BUSY_RETRY)
        if name in self.state.loading:
            raise Refused(RefusalReason.STARTING, f"{name} is still loading its models", STARTING_RETRY)
        if self.held >= self.limits.max_sessions:
            raise Refused(
                RefusalReason.BUSY,
                f"{name} is busy ({self.limits.max_sessions} calls at once is its limit); try again shortly",
                BUSY_RETRY,
            )
        overload = self._overload()
        ceiling, calls = self.state.ceiling, self.state.calls
        if overload is not None:
            ceiling.overloaded(calls)
            raise Refused(RefusalReason.BUSY, f"{name} is busy: this server is overloaded ({overload}); "
                          "try again shortly", BUSY_RETRY)
        if not ceiling.allows(calls):
            raise Refused(RefusalReason.BUSY, f"{name} is busy: this server was overloaded and takes "
                          f"{ceiling.limit} calls for now; try again shortly", BUSY_RETRY)
        self.held += 1
        self.state.calls += 1
        return _Slot(self)

    def _overload(self) -> str | None:
        """What says the process is overloaded, if anything does (see the serving modules)."""
        max_lag, lag = self.max_loop_lag, self.state.lag.recent()
        if max_lag is not None and lag > max_lag:
            return f"running {lag * 1000:.0f} ms late"
        max_audio, audio = self.max_audio_lag, self.state.audio_lag.recent()
        if max_audio is not None and audio > max_audio:
            return f"its calls' audio is taken {audio * 1000:.0f} ms late"
        return None

    @property
    def draining(self) -> bool:
        return self.state.draining

    @property
    def token_required(self) -> bool:
        return self.state.token is not None

    def token_ok(self, presented: str | None) -> bool:
        return self.state.token_ok(presented)


class _Slot(CallSlot):
    def __init__(self, host: AgentHost) -> None:
        self._host: AgentHost | None = host

    async def run(self, call: CallTransport) -> str:
        if self._host is None:
            raise RuntimeError("this call's place was already given back")
        audio_lag = self._host.state.audio_lag
        with ObservedCall(self._host.observers, self._host.agent_name) as observed:
            relay = TurnRelay(call, on_ended=observed.turn_ended)
            watched = observed.watching(relay.watch)

            async def companion(session: Session) -> None:
                with audio_lag.tracking(session):
                    await watched(session)

            result = await self._host.runner.run(call, companion=companion)
            observed.ended(result)
        return result.ended_because

    def release(self) -> None:
        if self._host is not None:
            self._host.held -= 1
            self._host.state.calls -= 1
            self._host = None
