"""After a hub restart the cards show each module's last reading from the recorder, before new data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from hub.app import Hub
from hub.config import load_hub_config
from provisioning.broker import MosquittoProcess
from tests.hub.web.conftest import hub_yaml, signed_in

READING = {"seq": 41, "hist": False, "readings": [{"ts": "2026-01-05T10:00:00.000Z", "values": {"ph": 7.25}}]}
LATER = {"seq": 42, "hist": False, "readings": [{"ts": "2026-01-05T10:00:01.000Z", "values": {"ph": 6.5}}]}


async def units(hub: Hub) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient(base_url=hub.web.url, timeout=10) as client:
        token = (await signed_in(client))["token"]
        found = (await client.get("/api/units", headers={"Authorization": f"Bearer {token}"})).json()
    return {f"{u['unit']}/{m['module']}": m for u in found for m in u["modules"]}


async def test_cards_show_the_recorded_last_reading_after_a_restart(mosquitto: MosquittoProcess,
                                                                    tmp_path: Path) -> None:
    config = load_hub_config(hub_yaml(tmp_path, mosquitto.port))
    async with Hub(config) as hub:
        hub.recorder.ingest("bench-3", "ph1", "data", READING, 0.0)
        await hub.recorder.flush()
    async with Hub(config) as hub:
        view = hub.web.view
        view.unit("bench-3").module("ph1")  # its retained state arrived again; no new reading yet
        view.unit("bench-3").module("heater")  # a module with no reading ever: shown without one
        found = await units(hub)
        assert found["bench-3/ph1"]["last"] == {"ph": 7.25}
        assert found["bench-3/ph1"]["last_ts"].startswith("2026-01-05T10:00:00")  # type: ignore[union-attr]
        assert found["bench-3/heater"]["last"] == {} and found["bench-3/heater"]["last_ts"] is None
        view.on_points("bench-3", "ph1", [(1767607201.0, {"ph": 6.5})])  # new data wins
        assert (await units(hub))["bench-3/ph1"]["last"] == {"ph": 6.5}


async def test_a_unit_heard_of_after_the_page_opened_gets_its_last_reading_pushed(
        mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    config = load_hub_config(hub_yaml(tmp_path, mosquitto.port))
    async with Hub(config) as hub:
        hub.recorder.ingest("bench-4", "do1", "data", LATER, 0.0)
        await hub.recorder.flush()
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.web.url, timeout=10) as client:
        token = (await signed_in(client))["token"]
        url = hub.web.url.replace("http", "ws") + "api/live"
        async with websockets.connect(url, additional_headers={"Cookie": f"labedge_session={token}"}) as ws:
            await ws.recv()  # hello: bench-4 not heard of yet
            hub.web.view.unit("bench-4").module("do1")
            async with asyncio.timeout(10):
                while True:
                    frame = json.loads(await ws.recv())
                    shown = [m for m in frame if m.get("type") == "unit" and m["unit"]["unit"] == "bench-4"
                             and m["unit"]["modules"][0]["last"]]
                    if shown:
                        break
    assert shown[0]["unit"]["modules"][0]["last"] == {"ph": 6.5}
