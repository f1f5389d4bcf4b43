"""The page of a hub that supervisord runs (the lab's way): the Processes panel lists every program with its
state and uptime from supervisord's XML-RPC, and follows a program stopped. On the same page: a unit heard
of only by its `$state` (no `$birth` yet) and a module that never sent a reading."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provisioning.broker import MosquittoProcess, free_port
from tests.browser.rig import PASSWORD, USER, checked_page, users_yaml, wait_http
from tests.browser.test_dashboard import PATIENT, sign_in
from tests.hub.web.supervised import ctl, supervisord
from tests.system.hub_rig import write_hub

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Supervised:
    url: str
    folder: Path
    broker_port: int


class _Proc:
    """What `wait_http` needs of a process: a supervised hub is watched through supervisord instead."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if "FATAL" in ctl(self.folder, "status", "hub") or "EXITED" in ctl(self.folder, "status", "hub"):
            self.returncode = 1
        return self.returncode


@pytest.fixture(scope="module")
def supervised(mosquitto: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    tmp = tmp_path_factory.mktemp("sup")
    port = free_port()
    config = write_hub(tmp / "hub", mosquitto.port, None, hub="hub-sup",
                       extra=f"web: {{host: 127.0.0.1, port: {port}}}\n{users_yaml()}")
    folder = tmp / "s"
    programs = {"hub": f"{sys.executable} -m labedge hub run --config {config}", "sleeper": "sleep 600"}
    with supervisord(folder, programs, cwd=REPO):
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, _Proc(folder), folder / "hub.log")  # type: ignore[arg-type]
        yield Supervised(url, folder, mosquitto.port)


@pytest.fixture
def sup_page(browser: Any, supervised: Supervised) -> Iterator[Any]:
    with checked_page(browser) as opened:
        yield opened


def test_the_processes_panel_shows_supervisord_s_states_and_uptimes(sup_page: Any,
                                                                     supervised: Supervised) -> None:
    sign_in(sup_page, supervised, USER, PASSWORD)  # type: ignore[arg-type]
    panel = "#processes-panel[data-supervisor='yes']"
    sup_page.wait_for_selector(f"{panel} tr[data-process='hub'][data-state='RUNNING']", timeout=PATIENT)
    sup_page.wait_for_selector(f"{panel} tr[data-process='sleeper'][data-state='RUNNING']", timeout=PATIENT)
    uptime = sup_page.text_content(f"{panel} tr[data-process='sleeper'] .uptime")
    assert uptime.endswith(" s") or "min" in uptime, uptime
    assert "supervisor.sock" in sup_page.text_content(f"{panel} .processes-message")
    ctl(supervised.folder, "stop", "sleeper")
    sup_page.wait_for_selector(f"{panel} tr[data-process='sleeper'][data-state='STOPPED']", timeout=PATIENT)
    ctl(supervised.folder, "start", "sleeper")


def test_a_unit_without_birth_and_a_module_without_readings_show_as_such(sup_page: Any,
                                                                          supervised: Supervised) -> None:
    from paho.mqtt import publish

    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    unit = {"state": "ready", "boot": "b-1", "ts": now}
    module = {"lecis": "IDLE", "control": "REMOTE", "ts": now, "outputs": {"on": False}, "error": None}
    publish.multiple([{"topic": "lab/ghost-1/$state", "payload": json.dumps(unit), "retain": True, "qos": 1},
                      {"topic": "lab/ghost-1/pump1/state", "payload": json.dumps(module), "retain": True,
                       "qos": 1}], hostname="127.0.0.1", port=supervised.broker_port)
    try:
        sign_in(sup_page, supervised, USER, PASSWORD)  # type: ignore[arg-type]
        card = "article.unit[data-unit='ghost-1'][data-presence='ready']"
        row = f"{card} tr[data-module='pump1']"
        sup_page.wait_for_selector(f"{row} .lecis[data-lecis='IDLE']", timeout=PATIENT)
        assert "off" in sup_page.text_content(f"{row} .out")
        sup_page.click(card)
        sup_page.wait_for_function("document.querySelector('#charts').textContent"
                                   ".includes('ghost-1 has no readings to chart')", timeout=PATIENT)
        assert sup_page.query_selector(f"{card} .reading") is None
    finally:
        publish.multiple([{"topic": "lab/ghost-1/$state", "payload": b"", "retain": True},
                          {"topic": "lab/ghost-1/pump1/state", "payload": b"", "retain": True}],
                         hostname="127.0.0.1", port=supervised.broker_port)
