"""The API of a real hub (no unit): access, CSRF, roles, and a 4xx naming the field for bad input."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from hub.app import Hub
from provisioning.broker import MosquittoProcess
from tests.hub.web.conftest import OPERATOR, VIEWER, signed_in

READS = ["/api/units", "/api/units/bench-1", "/api/experiment", "/api/events", "/api/sessions", "/api/me",
         "/api/history?unit=u&module=m&reading=r&start=1&end=2"]


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert "Traceback" not in response.text and "File \"" not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == response.status_code
    return error


async def test_nothing_is_read_without_signing_in(client: httpx.AsyncClient) -> None:
    for path in READS:
        response = await client.get(path)
        assert response.status_code == 401, path
        assert "sign in" in error_of(response)["message"]
    assert (await client.get("/api/openapi.json")).status_code == 200
    page = await client.get("/")
    assert page.status_code == 200 and "ESTOP ALL" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_the_cookie_is_httponly_samesite_strict_and_secure_behind_tls(
        client: httpx.AsyncClient) -> None:
    response = await client.post("/api/login", json={"username": OPERATOR, "password": "pw-1"})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    behind_proxy = await client.post("/api/login", json={"username": OPERATOR, "password": "pw-1"},
                                     headers={"X-Forwarded-Proto": "https"})
    assert "; secure" in behind_proxy.headers["set-cookie"].lower()


async def test_a_wrong_password_is_401_then_slowed(client: httpx.AsyncClient) -> None:
    wrong = {"username": OPERATOR, "password": "no"}
    answers = [await client.post("/api/login", json=wrong) for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert error_of(answers[0])["message"] == "wrong user name or password"
    assert int(answers[3].headers["retry-after"]) >= 1


async def test_cookie_calls_that_change_state_need_the_csrf_token(client: httpx.AsyncClient) -> None:
    me = await signed_in(client)  # the client keeps the cookie
    refused = await client.post("/api/estop")
    assert refused.status_code == 403 and error_of(refused)["field"] == "X-CSRF-Token"
    done = await client.post("/api/estop", headers={"X-CSRF-Token": me["csrf_token"]})
    assert done.status_code == 200 and done.json() == {"units": []}


async def test_a_viewer_reads_and_may_estop_but_not_command(client: httpx.AsyncClient) -> None:
    token = (await signed_in(client, VIEWER))["token"]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/units", headers=bearer)).status_code == 200
    assert (await client.post("/api/estop", headers=bearer)).status_code == 200
    for method, path, body in (("POST", "/api/units/bench-1/modules/ph1/command", {"cmd": "INIT"}),
                               ("POST", "/api/experiment/pause", None),
                               ("PUT", "/api/experiment/script", {"text": "x"}),
                               ("POST", "/api/sessions", {"unit": "bench-1"})):
        response = await client.request(method, path, json=body, headers=bearer)
        assert response.status_code == 403, path
        assert "viewer" in error_of(response)["message"]


@pytest.mark.parametrize(("body", "field", "words"), [
    (b"{not json", "body", "not valid JSON"),
    (b'{"cmd": 5}', "cmd", "string"),
    (b'{"cmd": "INIT", "args": []}', "args", "dictionary"),
    (b'{"cmd": "INIT", "extra": 1}', "extra", "not a field"),
    (b'{}', "cmd", "missing"),
    (b'{"cmd": "INIT", "args": {"ml": 1e999}}', "args", "finite"),
    (b'{"cmd": "INIT", "args": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "body", "nested"),
])
async def test_bad_bodies_are_422_naming_the_field(client: httpx.AsyncClient, body: bytes, field: str,
                                                   words: str) -> None:
    token = (await signed_in(client))["token"]
    response = await client.post("/api/units/bench-1/modules/ph1/command", content=body,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == field and words in error["message"]


async def test_unknown_ids_and_bad_queries_are_4xx_naming_them(client: httpx.AsyncClient) -> None:
    bearer = {"Authorization": f"Bearer {(await signed_in(client))['token']}"}
    cases = [("/api/units/nope", 404, "unit"), ("/api/units/NOT_A_UNIT", 422, "unit"),
             ("/api/events?limit=0", 422, "limit"), ("/api/events?since=nan", 422, "since"),
             ("/api/history?unit=u&module=m&reading=r&start=5&end=1", 422, "end"),
             ("/api/experiment/script", 409, None), ("/api/no/such/route", 404, None)]
    for path, status, field in cases:
        response = await client.get(path, headers=bearer)
        assert response.status_code == status, path
        assert error_of(response)["field"] == field, path
    estop = await client.post("/api/units/nope/estop", headers=bearer)
    assert estop.status_code == 404 and error_of(estop)["field"] == "unit"


async def test_validate_lists_every_problem_with_its_line(client: httpx.AsyncClient) -> None:
    bearer = {"Authorization": f"Bearer {(await signed_in(client))['token']}"}
    text = "experiment: x\nunits: {}\ntasks: 5\n"
    result = (await client.post("/api/experiment/validate", json={"text": text}, headers=bearer)).json()
    assert result["ok"] is False and result["problems"]
    assert all(isinstance(p["line"], int) and p["message"] for p in result["problems"])
    too_big = await client.post("/api/experiment/validate", json={"text": "x" * 200_001}, headers=bearer)
    assert too_big.status_code == 422 and error_of(too_big)["field"] == "text"


async def test_the_live_stream_needs_a_session_and_this_origin(web_hub: Hub,
                                                               client: httpx.AsyncClient) -> None:
    url = web_hub.web.url.replace("http", "ws") + "api/live"
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    token = (await signed_in(client))["token"]
    cookie = {"Cookie": f"labedge_session={token}"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, additional_headers={**cookie, "Origin": "http://evil.example"})
    assert refused.value.response.status_code == 403
    origin = web_hub.web.url.rstrip("/")
    async with websockets.connect(url, additional_headers={**cookie, "Origin": origin}) as ws:
        hello = json.loads(await ws.recv())
    assert hello[0]["type"] == "hello" and hello[0]["experiment"]["hub"] == "hub-web"


async def test_a_busy_port_is_a_clear_refusal_and_nothing_keeps_running(mosquitto: MosquittoProcess,
                                                                         tmp_path: Path) -> None:
    from hub.config import load_hub_config
    from hub.web.server import WebPortBusy
    from tests.hub.web.conftest import hub_yaml

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = hub_yaml(tmp_path, mosquitto.port)
        path.write_text(path.read_text().replace("web: {port: 0}", f"web: {{port: {port}}}"))
        with pytest.raises(WebPortBusy) as refused:
            async with Hub(load_hub_config(path)):
                pass
    assert f"127.0.0.1:{port}" in str(refused.value) and "web: port" in str(refused.value)
    async with Hub(load_hub_config(hub_yaml(tmp_path, mosquitto.port))) as again:  # the data folder is free
        assert again.web is not None
