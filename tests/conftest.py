"""Shared fixtures: a private Mosquitto for the whole test session, on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from provisioning.broker import MosquittoProcess
from tests.brokers import own_mosquitto


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On CI (CI=true) a skip would hide a missing tool: report it as a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI", "").lower() == "true" and report.skipped and call.when in ("setup", "call"):
        report.outcome = "failed"
        report.longrepr = f"skipped test on CI counts as a failure: {report.longrepr}"


@pytest.fixture(autouse=True)
def _working_folder_kept() -> Iterator[None]:
    """A test that leaves the process in another working folder (or deletes it) fails, naming itself:
    tests after it in the same worker would read relative paths from the wrong place."""
    before = os.getcwd()
    yield
    try:
        after = os.getcwd()
    except FileNotFoundError:
        after = "(a folder that no longer exists)"
    if after != before:
        os.chdir(before)
        pytest.fail(f"the test changed the working folder from {before} to {after}")


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoProcess]:
    with own_mosquitto() as broker:
        yield broker


@pytest.fixture
def outage_broker() -> Iterator[MosquittoProcess]:
    """A broker of the test's own, which the test may stop and start again (sessions persist)."""
    with own_mosquitto(persistence=True) as broker:
        yield broker
