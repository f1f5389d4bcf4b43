"""The API against a real hub, unit and script: manual commands through the hub's lease, recorded in
the run's commands.jsonl; a replaced script that does not validate leaves the running one untouched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.browser.rig import VIEWER, VIEWER_PASSWORD, WebLab, web_lab
from tests.system.hub_rig import commands


@pytest.fixture(scope="module")
def running(mosquitto: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    with web_lab(tmp_path_factory.mktemp("apilab"), mosquitto.port) as lab:
        yield lab


def until(what: str, check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def run_dir(lab: WebLab) -> Path:
    status, xp = lab.api("GET", "/api/experiment", token=lab.token())
    assert status == 200 and xp["run_id"], xp
    return lab.data_dir / "runs" / str(xp["run_id"])


def started(lab: WebLab, token: str) -> None:
    until("the run started", lambda: lab.api("GET", "/api/experiment", token=token)[1]["state"] == "running")


def test_a_manual_command_goes_through_the_lease_and_into_commands_jsonl(running: WebLab) -> None:
    token = running.token()
    started(running, token)
    status, body = running.api("POST", f"/api/units/{running.unit}/modules/base_pump/command",
                               {"cmd": "dose", "args": {"ml": 0.5}}, token)
    assert status == 200 and body["status"] == "done", body
    lines = until("the command in commands.jsonl", lambda: [
        line for line in commands(run_dir(running)) if line.get("effect_id") == body["id"]])
    assert {line["origin"] for line in lines} == {"manual:ada"}
    assert lines[0]["cmd"] == "dose" and lines[-1]["outcome"]["status"] == "done"


def test_a_bad_command_is_refused_naming_the_parameter(running: WebLab) -> None:
    token = running.token()
    started(running, token)
    status, body = running.api("POST", f"/api/units/{running.unit}/modules/base_pump/command",
                               {"cmd": "dose", "args": {"ml": "lots"}}, token)
    assert status == 422 and body["error"]["field"] == "args.ml", body
    status, body = running.api("POST", f"/api/units/{running.unit}/modules/base_pump/command",
                               {"cmd": "fly", "args": {}}, token)
    assert status == 422 and body["error"]["field"] == "cmd", body
    status, body = running.api("POST", f"/api/units/{running.unit}/modules/nope/command", {"cmd": "INIT"},
                               token)
    assert status == 404 and body["error"]["field"] == "module", body
    viewer = running.token(VIEWER, VIEWER_PASSWORD)
    status, body = running.api("POST", f"/api/units/{running.unit}/modules/base_pump/command",
                               {"cmd": "dose", "args": {"ml": 0.5}}, viewer)
    assert status == 403


def test_a_script_that_does_not_validate_is_422_and_the_running_version_stays(running: WebLab) -> None:
    token = running.token()
    started(running, token)
    _, before = running.api("GET", "/api/experiment/script", token=token)
    broken = before["text"].replace("every: 2s", "every: soon").replace("wait: 1s", "wait: -1s")
    status, body = running.api("PUT", "/api/experiment/script", {"text": broken}, token)
    assert status == 422 and body["error"]["field"] == "text", body
    lines = sorted({p["line"] for p in body["problems"]})
    expected = sorted({n for n, line in enumerate(broken.splitlines(), 1) if "soon" in line or "-1s" in line})
    assert lines == expected, body["problems"]
    _, after = running.api("GET", "/api/experiment/script", token=token)
    assert after == before
    changed = before["text"].replace("every: 2s", "every: 3s")
    status, applied = running.api("PUT", "/api/experiment/script", {"text": changed}, token)
    assert status == 200 and applied["running_version"] == before["version"] + 1, applied
    _, versions = running.api("GET", "/api/experiment/versions", token=token)
    last = versions["versions"][-1]
    assert last["author"] == "ada" and "-    every: 2s" in last["diff"] and "+    every: 3s" in last["diff"]
    status, shown = running.api("GET", f"/api/experiment/versions/{last['version']}", token=token)
    assert status == 200 and shown["text"] == changed


def test_events_come_alarms_first(running: WebLab) -> None:
    token = running.token()
    status, body = running.api("POST", f"/api/units/{running.unit}/estop", token=token)
    assert status == 200 and body["status"] == "done", body
    levels = until("events", lambda: [e["level"] for e in running.api("GET", "/api/events", token=token)[1]
                                      ["events"]] or None)
    order = {"alarm": 0, "warning": 1, "info": 2}
    assert [order[level] for level in levels] == sorted(order[level] for level in levels)
    status, cleared = running.api("POST", f"/api/units/{running.unit}/clear", token=token)
    assert status == 200 and cleared["status"] == "done", cleared
