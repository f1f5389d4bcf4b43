"""The API against a real hub, unit and script: manual commands through the hub's lease, recorded in
the run's commands.jsonl; a replaced script that does not validate leaves the running one untouched.
Hostile bodies that reach the real unit (deep nesting just under the parser's limit, huge and tiny numbers,
lone surrogates and control characters, in command arguments, a script and a session) are a 4xx or the
unit's refusal, never a 500, and the hub keeps serving."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def send(lab: WebLab, method: str, path: str, raw: bytes, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(lab.url.rstrip("/") + path, data=raw, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        assert b"Traceback" not in text
        return exc.code, json.loads(text)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def dose(args: str) -> str:
    return '{"cmd": "dose", "args": ' + args + "}"


MANY = ", ".join(f'"k{i}": {i}' for i in range(20_000))
CASES = [
    ("deep list 900", dose('{"ml": ' + nested(900) + "}")),
    ("deep list 990", dose('{"ml": ' + nested(990) + "}")),
    ("deep dict 900", dose('{"a": ' * 900 + "1" + "}" * 900)),
    ("huge int", dose('{"ml": ' + "9" * 4000 + "}")),
    ("tiny float", dose('{"ml": 1e-320}')),
    ("big float", dose('{"ml": 1.7976931348623157e308}')),
    ("surrogate name", dose('{"\\ud800": 1}')),
    ("surrogate value", dose('{"ml": "\\udfff"}')),
    ("control value", dose('{"ml": "\\u0000"}')),
    ("long key", dose('{"' + "k" * 100_000 + '": 1}')),
    ("many keys", dose("{" + MANY + "}")),
]


@pytest.mark.parametrize(("name", "body"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_command_body_is_refused_never_a_500(running: WebLab, name: str, body: str) -> None:
    token = running.token()
    status, answer = send(running, "POST", f"/api/units/{running.unit}/modules/base_pump/command",
                          body.encode(), token)
    assert 400 <= status < 500, (name, status, answer)
    assert answer["error"]["status"] == status
    assert running.api("GET", "/api/me", token=token)[0] == 200


SCRIPT_CASES = [
    ("PUT", "/api/experiment/script", {"text": "experiment: a\ud800\n"}),
    ("PUT", "/api/experiment/script", {"text": "experiment: x\n", "author": "\ud800"}),
    ("PUT", "/api/experiment/script", {"text": "experiment: x\n", "source": "\x00\n"}),
    ("POST", "/api/experiment/validate", {"text": "a: " + nested(5000)}),
    ("POST", "/api/experiment/validate", {"text": "a: &x [*x]\n"}),
    ("POST", "/api/experiment/validate", {"text": "\ud800: 1\n", "source": "\ud800"}),
    ("POST", "/api/experiment/stop", {"reason": "\ud800"}),
    ("POST", "/api/sessions", {"unit": "bench-7", "experiment": "\ud800"}),
]


@pytest.mark.parametrize(("method", "path", "body"), SCRIPT_CASES)
def test_hostile_text_in_scripts_and_sessions_is_refused(running: WebLab, method: str, path: str,
                                                         body: dict[str, Any]) -> None:
    token = running.token()
    status, answer = send(running, method, path, json.dumps(body).encode(), token)
    if path.endswith("/validate") and status == 200:
        assert answer["ok"] is False and answer["problems"]
    else:
        assert 400 <= status < 500, (path, body, status, answer)
    status, xp = running.api("GET", "/api/experiment", token=token)
    assert status == 200 and xp["state"] == "running"
