"""The API attacked as an outsider would: hostile JSON, odd path parameters, every state-changing route
as a viewer, sessions the log refuses, chunked bodies past the limit, removed users' tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from hub.app import Hub
from tests.hub.web.conftest import OPERATOR, VIEWER, signed_in
from tests.hub.web.test_api import error_of

SURROGATE = "a\ud800b"


async def bearer(client: httpx.AsyncClient, user: str = OPERATOR) -> dict[str, str]:
    token = (await signed_in(client, user))["token"]
    client.cookies.clear()
    return {"Authorization": f"Bearer {token}"}


def raw(value: Any) -> bytes:
    """JSON as a hostile client writes it: lone surrogates escaped as \\ud800, which json.loads accepts."""
    return json.dumps(value).encode()


async def test_a_session_the_log_refuses_is_a_4xx_naming_the_field(web_hub: Hub,
                                                                    client: httpx.AsyncClient) -> None:
    auth = await bearer(client)
    web_hub.web.view.unit("ghost")  # heard of (its $state) but no $birth: the session log does not know it
    unknown = await client.post("/api/sessions", json={"unit": "ghost"}, headers=auth)
    assert unknown.status_code == 404, unknown.text
    assert error_of(unknown)["field"] == "unit" and "ghost" in error_of(unknown)["message"]
    web_hub.births["ghost"] = object()  # type: ignore[assignment]  # known now: its text is checked
    for experiment in ("one\ntwo", SURROGATE, "\u202eevil", "   "):
        bad = await client.post("/api/sessions", content=raw({"unit": "ghost", "experiment": experiment}),
                                headers={**auth, "Content-Type": "application/json"})
        assert bad.status_code == 422, (experiment, bad.text)
        assert error_of(bad)["field"] == "experiment"
    assert web_hub.sessions.current("ghost") is None


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/login", {"username": SURROGATE, "password": SURROGATE}),
    ("POST", "/api/units/bench-1/modules/ph1/command", {"cmd": "INIT", "args": {SURROGATE: SURROGATE}}),
    ("POST", "/api/units/bench-1/modules/ph1/command", {"cmd": SURROGATE}),
    ("POST", "/api/experiment/validate", {"text": f"experiment: {SURROGATE}\n", "source": SURROGATE}),
    ("PUT", "/api/experiment/script", {"text": f"experiment: {SURROGATE}\n", "author": SURROGATE}),
    ("POST", "/api/experiment/stop", {"reason": SURROGATE}),
    ("POST", "/api/sessions", {"unit": SURROGATE, "experiment": SURROGATE}),
])
async def test_lone_surrogates_in_any_string_are_a_4xx(client: httpx.AsyncClient, method: str, path: str,
                                                       body: dict[str, Any]) -> None:
    auth = await bearer(client)
    response = await client.request(method, path, content=raw(body),
                                     headers={**auth, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    error_of(response)


async def test_huge_numbers_are_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    auth = {**(await bearer(client)), "Content-Type": "application/json"}
    digits = b"9" * 5000  # past Python's 4300-digit limit for int()
    for body in (b'{"cmd": "INIT", "args": {"ml": ' + digits + b"}}",
                 b'{"cmd": "INIT", "args": {"ml": -1e400}}'):
        response = await client.post("/api/units/bench-1/modules/ph1/command", content=body, headers=auth)
        assert response.status_code == 422, response.text[:300]
        assert error_of(response)["field"] in ("body", "args")
    versions = await client.get("/api/experiment/versions/" + "9" * 5000, headers=auth)
    assert versions.status_code == 422 and error_of(versions)["field"] == "version"


def chunked_post(url: str, token: str, total: int, piece: int = 64 * 1024) -> bytes:
    """POST a chunked body (no Content-Length) of `total` bytes, then read the answer; stops sending when
    the hub answers or cuts the connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall((f"POST /api/experiment/validate HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n").encode())
        sent = 0
        with contextlib.suppress(OSError):
            while sent < total:
                size = min(piece, total - sent)
                sock.sendall(f"{size:x}\r\n".encode() + b"x" * size + b"\r\n")
                sent += size
        answer = b""
        with contextlib.suppress(OSError):
            while b"}" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        return answer


async def test_a_10_mb_body_is_refused_with_or_without_a_length(web_hub: Hub,
                                                                 client: httpx.AsyncClient) -> None:
    from hub.web.app import MAX_BODY_BYTES

    auth = {**(await bearer(client)), "Content-Type": "application/json"}
    sized = await client.post("/api/experiment/validate", content=b"x" * 10_000_000, headers=auth)
    assert sized.status_code == 413 and error_of(sized)["field"] == "body"
    token = auth["Authorization"].split()[1]
    just_over = await asyncio.to_thread(chunked_post, web_hub.web.url, token, MAX_BODY_BYTES + 10)
    assert just_over.startswith(b"HTTP/1.1 413"), just_over[:300]
    assert b'"field":"body"' in just_over
    huge = await asyncio.to_thread(chunked_post, web_hub.web.url, token, 10_000_000)
    assert huge == b"" or huge.startswith(b"HTTP/1.1 413"), huge[:300]  # cut off, never read to the end
    assert (await client.get("/api/me", headers=auth)).status_code == 200


@pytest.mark.parametrize(("path", "field"), [
    ("/api/units/..", None), ("/api/units/..%2F..%2Fetc%2Fpasswd", None), ("/api/units/bench%00", "unit"),
    ("/api/units/b%C3%A9nch", "unit"), ("/api/units/%F0%9F%92%A5", "unit"), ("/api/units/%ff", "unit"),
    ("/api/sessions/..", None), ("/api/sessions/abc%00", "session_id"),
    ("/api/sessions/%E2%80%AE", "session_id"),
    ("/api/experiment/versions/1%00", "version"), ("/api/experiment/versions/%D9%A3", "version"),
    ("/static/..%2F..%2Fapp.py", None), ("/static/../app.py", None), ("/static/%00", None),
    ("/api/units/%ED%A0%80", "unit"), ("/api/sessions/%ED%A0%80", "session_id"),
    ("/api/events?code=%ED%A0%80&limit=0", "limit"), ("/api/events?unit=%ED%A0%80", "unit"),
    ("/api/history?unit=u&module=m&reading=%ED%A0%80&start=1&end=1e300", "end"),
    ("/api/events?since=1e400", "since"), ("/api/sessions?limit=99999999999999999999999", "limit"),
])
async def test_odd_path_parameters_are_a_4xx_and_reach_no_file(client: httpx.AsyncClient, path: str,
                                                               field: str | None) -> None:
    auth = await bearer(client)
    response = await client.get(path, headers=auth)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])
    assert "import" not in response.text and "root:" not in response.text
    if path.startswith("/api/") and field is not None:
        assert error_of(response)["field"] == field, path


def state_changing(doc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for path, item in doc["paths"].items():
        for method in item:
            if method in ("post", "put", "patch", "delete"):
                out.append((method.upper(), path))
    return out


# Every signed-in user may: ESTOP (the one button), sign out, and check a script (it changes nothing).
FOR_EVERYONE = {("POST", "/api/estop"), ("POST", "/api/units/{unit}/estop"), ("POST", "/api/logout"),
                ("POST", "/api/login"), ("POST", "/api/experiment/validate")}


async def test_a_viewer_is_refused_every_state_changing_route_of_the_openapi_document(
        web_hub: Hub, client: httpx.AsyncClient) -> None:
    web_hub.web.view.unit("bench-1")
    doc = (await client.get("/api/openapi.json")).json()
    routes = state_changing(doc)
    assert len(routes) >= 12 and FOR_EVERYONE <= set(routes)
    auth = await bearer(client, VIEWER)
    bodies = {"/api/sessions": {"unit": "bench-1"}, "/api/experiment/script": {"text": "x: 1"},
              "/api/units/{unit}/modules/{module}/command": {"cmd": "INIT"}}
    refused = sorted(set(routes) - FOR_EVERYONE)
    for by_cookie in (False, True):
        if by_cookie:  # and by cookie with its CSRF token: a viewer still
            headers = {"X-CSRF-Token": (await signed_in(client, VIEWER))["csrf_token"]}
        else:
            headers = auth
        for method, path in refused:
            url = path.replace("{unit}", "bench-1").replace("{module}", "ph1").replace("{session_id}", "s-1")
            response = await client.request(method, url, json=bodies.get(path), headers=headers)
            assert response.status_code == 403, (method, path, by_cookie, response.text)
            assert "viewer" in error_of(response)["message"]
    assert not [s for s in web_hub.sessions.list()]


async def test_a_cookie_without_the_csrf_header_changes_nothing_on_any_route(
        web_hub: Hub, client: httpx.AsyncClient) -> None:
    web_hub.web.view.unit("bench-1")
    doc = (await client.get("/api/openapi.json")).json()
    await signed_in(client)  # the operator's cookie, no header
    for method, path in state_changing(doc):
        if path == "/api/login":
            continue
        url = path.replace("{unit}", "bench-1").replace("{module}", "ph1").replace("{session_id}", "s-1")
        response = await client.request(method, url, json={"unit": "bench-1"} if path == "/api/sessions"
                                         else None)
        assert response.status_code == 403 and error_of(response)["field"] == "X-CSRF-Token", (method, path)


async def test_a_removed_user_or_a_changed_password_ends_the_session(web_hub: Hub,
                                                                     client: httpx.AsyncClient) -> None:
    from hub.web.passwords import hash_password

    viewer = await bearer(client, VIEWER)
    operator = await bearer(client, OPERATOR)
    assert (await client.get("/api/me", headers=viewer)).status_code == 200
    path = Path(web_hub.config.source)
    text = path.read_text()
    lines = [line for line in text.splitlines() if not line.strip().startswith(f"{VIEWER}:")]
    lines = [line.replace(line.split("password_hash: ")[1], f"'{hash_password('new one')}'}}")
             if line.strip().startswith(f"{OPERATOR}:") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")
    gone = await client.get("/api/me", headers=viewer)
    assert gone.status_code == 401, gone.text
    assert (await client.get("/api/me", headers=operator)).status_code == 401
    signed = await client.post("/api/login", json={"username": OPERATOR, "password": "new one"})
    assert signed.status_code == 200
    refused = await client.post("/api/login", json={"username": VIEWER, "password": "pw-1"})
    assert refused.status_code == 401


async def test_a_sign_in_flood_from_many_addresses_checks_two_passwords_at_a_time(
        web_hub: Hub, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """X-Forwarded-For is trusted from loopback (a TLS proxy there): each try looks like a new address,
    so the per-address wait never starts; the checks at once stay bounded and the API goes on answering."""
    import threading

    from hub.web import auth as auth_module

    auth_headers = await bearer(client)
    running = {"now": 0, "most": 0}
    lock = threading.Lock()
    real = auth_module.verify_password

    def counted(digest: str | None, password: str) -> bool:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        try:
            return real(digest, password)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(auth_module, "verify_password", counted)
    tries = [client.post("/api/login", json={"username": OPERATOR, "password": f"guess {i}"},
                         headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"}) for i in range(60)]
    answers = await asyncio.gather(*tries)
    codes = sorted({a.status_code for a in answers})
    assert set(codes) <= {401, 429} and 429 in codes, codes
    assert running["most"] <= auth_module.MAX_CHECKS, running
    assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)
    assert (await client.get("/api/events", headers=auth_headers)).status_code == 200


@pytest.mark.parametrize("query", [
    "/api/events?code=%ED%A0%80", "/api/events?module=%00", "/api/events?code=%F0%9F%92%A5%E2%80%AE",
    "/api/history?unit=u&module=m&reading=%ED%A0%80&start=1&end=2",
    "/api/history?unit=u&module=m&reading=%00%27%22;--&start=1&end=2",
    "/api/history?unit=u&module=m&reading=r&start=0&end=1e11&points=5000",
])
async def test_odd_query_text_reaches_the_recorder_safely(client: httpx.AsyncClient, query: str) -> None:
    auth = await bearer(client)
    response = await client.get(query, headers=auth)
    assert response.status_code == 200, (query, response.text[:300])


async def test_script_checks_run_beside_the_loop_one_at_a_time(web_hub: Hub, client: httpx.AsyncClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A viewer may check scripts; each parse of a big one takes a good part of a second, so it must not
    run on the loop the link and the controller share, nor many at once."""
    import threading

    from hub.web import actions

    auth = await bearer(client, VIEWER)
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    running = {"now": 0, "most": 0}
    lock = threading.Lock()
    real = actions._problems

    def watched(text: str, source: str, capabilities: dict[str, Any]) -> list[dict[str, Any]]:
        with lock:
            threads.add(threading.get_ident())
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        try:
            return real(text, source, capabilities)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(actions, "_problems", watched)
    text = "".join(f"k{i}: {i}\n" for i in range(20_000))[:200_000]
    tries = [client.post("/api/experiment/validate", json={"text": text}, headers=auth) for _ in range(12)]
    answers = await asyncio.gather(*tries)
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes
    assert all(a.json()["ok"] is False for a in answers if a.status_code == 200)
    assert threads and loop_thread not in threads and running["most"] == 1, (threads, running)
