"""Shared fixtures for the smart-turn tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceflow.models import ModelError
from voiceflow_smart_turn.weights import FETCH_COMMAND, installed


@pytest.fixture(scope="session")
def model_file() -> Path:
    """The fetched, verified smart-turn model. Missing is a failure, not a skip: scripts/test.sh
    fetches it, and a CI run that silently skipped these tests would prove nothing."""
    try:
        return installed()
    except ModelError as exc:
        pytest.fail(f"{exc}\n(run `{FETCH_COMMAND}` once; scripts/test.sh does)")
