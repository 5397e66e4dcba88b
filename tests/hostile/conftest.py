"""Hypothesis profiles for the hostile-input property tests.

``ci`` (the default) is deterministic and short: a fixed seed, a few hundred examples per
property, no example database, and :data:`FUZZ_BUDGET_SECONDS` of wall time per property, so the
whole fuzz file stays under a minute on a busy two-core box. ``long`` is for a run by hand
(``HYPOTHESIS_PROFILE=long``): random seeds, tens of thousands of examples, no time budget.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, settings

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=30_000,
    deadline=None,
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=True,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

FUZZ_BUDGET_SECONDS: float | None = None if PROFILE == "long" else 12.0
"""Wall time one property may spend on examples before the rest pass without running."""


class FuzzBudget:
    """Per-property wall-time budget: ``spent(name)`` turns true once ``name`` has run long enough."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started: dict[str, float] = {}

    def spent(self, name: str) -> bool:
        if self.seconds is None:
            return False
        start = self.started.setdefault(name, time.monotonic())
        return time.monotonic() - start > self.seconds


@pytest.fixture(scope="session")
def fuzz_budget() -> FuzzBudget:
    return FuzzBudget(FUZZ_BUDGET_SECONDS)
