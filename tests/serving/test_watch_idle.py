"""``watch_idle``: the transports' idle timeout without a timer armed per message. On a virtual
clock, so the timings are exact on any machine."""

from __future__ import annotations

import anyio
import pytest

from voiceflow.clock import VirtualClock
from voiceflow.serving.api import ClientError, watch_idle

pytestmark = pytest.mark.anyio


async def test_a_silent_client_times_out_after_the_timeout() -> None:
    async with VirtualClock() as clock:
        with pytest.raises(TimeoutError):
            async with watch_idle(clock, 5.0):
                await clock.sleep(60.0)
        assert clock.now() == pytest.approx(5.0, abs=0.05)


async def test_every_message_heard_restarts_the_timeout() -> None:
    async with VirtualClock() as clock:
        with pytest.raises(TimeoutError):
            async with watch_idle(clock, 5.0) as idle:
                for _ in range(4):
                    await clock.sleep(4.0)  # a message every 4 s: never idle for 5
                    idle.heard()
                await clock.sleep(60.0)
        assert clock.now() == pytest.approx(16.0 + 5.0, abs=0.05)


async def test_a_body_that_ends_first_leaves_no_watcher_behind() -> None:
    async with VirtualClock() as clock:
        async with watch_idle(clock, 5.0):
            await clock.sleep(1.0)
        await clock.sleep(10.0)  # no TimeoutError later: the watcher went with the body
        assert clock.now() == pytest.approx(11.0, abs=0.05)


async def test_the_bodys_own_error_comes_out_as_itself() -> None:
    async with VirtualClock() as clock:
        with pytest.raises(ClientError, match="bad"):
            async with watch_idle(clock, 5.0):
                await clock.sleep(1.0)
                raise ClientError("bad_message", "bad")


async def test_an_outer_cancellation_is_not_taken_for_idleness() -> None:
    async with VirtualClock() as clock:
        with anyio.move_on_after(1.0) as outer:  # real seconds: the virtual clock runs ahead
            async with watch_idle(clock, 5.0):
                outer.cancel()
                await clock.sleep(1.0)
        assert outer.cancelled_caught
