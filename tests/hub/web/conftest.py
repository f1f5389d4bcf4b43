"""An in-process hub with its dashboard on a free port, against the session's Mosquitto (no unit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.app import Hub
from hub.config import load_hub_config
from hub.web.passwords import hash_password
from provisioning.broker import MosquittoProcess

OPERATOR, VIEWER, PASSWORD = "ada", "tom", "pw-1"
TOPIC_ROOT = "webtest"


def hub_yaml(tmp: Path, port: int, extra: str = "") -> Path:
    digest = hash_password(PASSWORD)
    path = tmp / "hub.yaml"
    # A topic root of its own: the session's broker holds other tests' retained units (the browser lab's).
    path.write_text(f"hub: hub-web\nbroker: {{host: 127.0.0.1, port: {port}, keepalive_s: 2}}\n"
                    f"topic_root: {TOPIC_ROOT}\n"
                    f"data_dir: {tmp / 'data'}\nweb: {{port: 0}}\nusers:\n"
                    f"  {OPERATOR}: {{role: operator, password_hash: '{digest}'}}\n"
                    f"  {VIEWER}: {{role: viewer, password_hash: '{digest}'}}\n{extra}")
    return path


@pytest.fixture
async def web_hub(mosquitto: MosquittoProcess, tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub(load_hub_config(hub_yaml(tmp_path, mosquitto.port))) as hub:
        yield hub


@pytest.fixture
async def client(web_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web_hub.web.url, timeout=10) as c:
        yield c


async def signed_in(client: httpx.AsyncClient, user: str = OPERATOR) -> dict[str, Any]:
    response = await client.post("/api/login", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
