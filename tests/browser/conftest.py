"""Fixtures of the browser tests: one real lab per module, Debian's chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import own_mosquitto
from tests.browser.rig import CHROMIUM_ARGS, WebLab, checked_page, chromium_or_skip, web_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    # A broker of its own: the session's broker keeps the retained units of every test before this
    # one in the worker, and the lab-wide ESTOP waits for each unit the hub has seen.
    with own_mosquitto() as broker, web_lab(tmp_path_factory.mktemp("weblab"), broker.port) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, lab: WebLab) -> Iterator[Any]:
    with checked_page(browser) as opened:
        yield opened


def artifacts_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "var" / "browser"
