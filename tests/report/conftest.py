"""Shared by the report tests: the timelines of two real calls, made once per run."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from report_calls import eventful_call, plain_call, write


async def _make(folder: Path) -> None:
    write(await eventful_call(), folder / "eventful.timeline.json")
    write(await plain_call(), folder / "plain.timeline.json")


@pytest.fixture(scope="session")
def timelines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``eventful.timeline.json`` and ``plain.timeline.json`` (see report_calls);
    synchronous so that plain tests (the command line) can use it too."""
    folder = tmp_path_factory.mktemp("calls")
    anyio.run(_make, folder)
    return folder
