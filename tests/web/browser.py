"""Debian's chromium, driven by Playwright, with a WAV file for a microphone.

Playwright cannot download its own browser here, so the system's is used (``executable_path``).
A machine without chromium or Playwright skips the browser tests with the command that installs
them; under CI (``CI=true``) a missing browser fails instead, because ``bash .ci/run`` installs
it and a skip there would hide a broken install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
"""Debian's binary first: /usr/bin/chromium is a shell wrapper that Playwright cannot drive."""
INSTALL = "apt-get install chromium && pip install -e '.[web]' (or: bash scripts/test.sh)"


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    reason = f"{what} is missing: {INSTALL}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_path() -> str:
    for candidate in CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found and os.access(found, os.X_OK):
            return found
    missing("chromium")
    raise AssertionError("unreachable")


@asynccontextmanager
async def browser_page(microphone: Path) -> AsyncIterator[Any]:
    """A page in headless chromium whose microphone plays ``microphone`` once (then silence)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright")
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert not errors, f"the page raised: {errors}"
        finally:
            await browser.close()
