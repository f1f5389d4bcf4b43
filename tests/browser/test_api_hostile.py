"""Hostile bodies that reach a real unit: deep nesting just under the parser's limit, huge and tiny numbers,
lone surrogates and control characters in command arguments, a script and a session; the hub answers 4xx
or the unit's refusal, never a 500, and keeps serving."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from provisioning.broker import MosquittoProcess
from tests.browser.rig import WebLab, web_lab


@pytest.fixture(scope="module")
def running(mosquitto: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    with web_lab(tmp_path_factory.mktemp("hostile"), mosquitto.port) as lab:
        yield lab


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
