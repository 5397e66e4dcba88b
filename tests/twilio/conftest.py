"""The fake Twilio REST API, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from voiceflow.testing.fake_twilio import FakeTwilio


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake
