"""Fixtures of the browser tests: one real lab per module, Debian's chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import own_mosquitto
from tests.browser.rig import CHROMIUM_ARGS, WebLab, chromium_or_skip, web_lab


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
    # bypass_csp: the page forbids eval, which Playwright needs for wait_for_function
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


def artifacts_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "var" / "browser"
