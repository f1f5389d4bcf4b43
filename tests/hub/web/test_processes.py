"""/api/processes: the states supervisord gives over its XML-RPC, or why there are none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from hub.app import Hub
from hub.config import load_hub_config
from hub.web.processes import ENV, server_url, uptime_s
from provisioning.broker import MosquittoProcess
from tests.hub.web.conftest import hub_yaml, signed_in
from tests.hub.web.supervised import ctl, supervisord


def test_the_address_comes_from_hub_yaml_else_from_supervisord_s_environment() -> None:
    assert server_url(None, {}) is None
    assert server_url(None, {ENV: "unix:///tmp/s.sock"}) == "unix:///tmp/s.sock"
    assert server_url("http://127.0.0.1:9001", {ENV: "unix:///tmp/s.sock"}) == "http://127.0.0.1:9001"
    assert server_url(False, {ENV: "unix:///tmp/s.sock"}) is None


@pytest.mark.parametrize(("description", "seconds"), [
    ("pid 1234, uptime 0:01:02", 62), ("pid 7, uptime 2 days, 3:00:05", 2 * 86400 + 3 * 3600 + 5),
    ("pid 7, uptime 1 day, 0:00:00", 86400), ("Not started", None), ("Dec 01 03:04 PM", None),
])
def test_uptime_is_read_from_supervisord_s_description(description: str, seconds: int | None) -> None:
    assert uptime_s(description) == seconds


def test_a_supervisor_key_that_is_no_address_is_refused_with_its_line(tmp_path: Path) -> None:
    from lecis.errors import ConfigError

    path = hub_yaml(tmp_path, 1883)
    path.write_text(path.read_text().replace("web: {port: 0}", "web: {port: 0, supervisor: /run/s.sock}"))
    with pytest.raises(ConfigError) as refused:
        load_hub_config(path)
    assert "web.supervisor" in str(refused.value) and "unix:///" in str(refused.value)


async def processes(hub: Hub) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=hub.web.url, timeout=10) as client:
        token = (await signed_in(client))["token"]
        response = await client.get("/api/processes", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


async def test_every_process_with_its_state_and_uptime(mosquitto: MosquittoProcess, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with supervisord(tmp_path / "sup", {"sleeper": "sleep 600", "quick": "true"}) as url:
        path = hub_yaml(tmp_path, mosquitto.port)
        path.write_text(path.read_text().replace("web: {port: 0}", f"web: {{port: 0, supervisor: '{url}'}}"))
        async with Hub(load_hub_config(path)) as hub:
            body = await processes(hub)
            assert body["supervisor"] == url and body["message"] is None
            rows = {row["name"]: row for row in body["processes"]}  # type: ignore[attr-defined]
            assert rows["sleeper"]["state"] == "RUNNING" and isinstance(rows["sleeper"]["pid"], int)
            assert isinstance(rows["sleeper"]["uptime_s"], int)
            assert rows["quick"]["state"] in ("EXITED", "RUNNING", "STARTING")
            await asyncio.to_thread(ctl, tmp_path / "sup", "stop", "sleeper")
            hub.web.ctx.processes._cached = None  # the next page asks again (answers are shared for 2 s)
            rows = {row["name"]: row for row in (await processes(hub))["processes"]}  # type: ignore[attr-defined]
            assert rows["sleeper"]["state"] == "STOPPED" and rows["sleeper"]["uptime_s"] is None


async def test_without_supervisord_the_answer_says_so(mosquitto: MosquittoProcess, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    async with Hub(load_hub_config(hub_yaml(tmp_path, mosquitto.port))) as hub:
        body = await processes(hub)
    assert body["supervisor"] is None and body["processes"] == []
    assert "not started by supervisord" in str(body["message"])
    gone = tmp_path / "gone.sock"
    monkeypatch.setenv(ENV, f"unix://{gone}")  # the supervisord that started it has gone
    async with Hub(load_hub_config(hub_yaml(tmp_path, mosquitto.port))) as hub:
        body = await processes(hub)
    assert body["supervisor"] == f"unix://{gone}" and body["processes"] == []
    assert "no supervisord answers" in str(body["message"])


async def test_a_supervisord_that_never_answers_costs_a_bounded_wait(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from hub.web import processes as module

    monkeypatch.setattr(module, "TIMEOUT_S", 0.5)
    path = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen(4)  # accepts connections, never answers
        before = socket.getdefaulttimeout()
        body = await module.Processes(f"unix://{path}").status()
        assert socket.getdefaulttimeout() == before  # nothing process-wide was changed for the call
    assert body["processes"] == [] and "timed out" in str(body["message"])
