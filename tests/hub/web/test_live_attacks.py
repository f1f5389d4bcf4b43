"""The live stream attacked: many pages at once, a flood of client messages, oversized ones, bad origins."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
import websockets

from hub.app import Hub
from hub.web.ws import MAX_PER_USER
from tests.hub.web.conftest import VIEWER, signed_in


def live_url(hub: Hub) -> str:
    return hub.web.url.replace("http", "ws") + "api/live"


async def test_one_user_cannot_take_every_stream_and_the_others_go_on(web_hub: Hub,
                                                                       client: httpx.AsyncClient) -> None:
    token = (await signed_in(client))["token"]
    cookie = {"Cookie": f"labedge_session={token}"}
    async with contextlib.AsyncExitStack() as stack:
        url = live_url(web_hub)
        pages = [await stack.enter_async_context(websockets.connect(url, additional_headers=cookie))
                 for _ in range(MAX_PER_USER)]
        for page in pages:
            assert json.loads(await page.recv())[0]["type"] == "hello"
        async with websockets.connect(live_url(web_hub), additional_headers=cookie) as extra:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await extra.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "at most" in closed.value.rcvd.reason
        assert len(web_hub.web.bridge.clients) == MAX_PER_USER
        other = (await signed_in(client, VIEWER))["token"]  # another user still gets a stream
        async with websockets.connect(live_url(web_hub),
                                      additional_headers={"Cookie": f"labedge_session={other}"}) as viewer:
            assert json.loads(await viewer.recv())[0]["type"] == "hello"
        web_hub.web.bridge.publish({"type": "event", "event": {"message": "to all"}})
        for page in pages:
            async with asyncio.timeout(10):
                assert "to all" in await page.recv()
    async with asyncio.timeout(10):
        while web_hub.web.bridge.clients:  # every closed page is forgotten
            await asyncio.sleep(0.05)


async def test_a_flood_of_client_messages_neither_stops_the_hub_nor_the_stream(
        web_hub: Hub, client: httpx.AsyncClient) -> None:
    token = (await signed_in(client))["token"]
    cookie = {"Cookie": f"labedge_session={token}"}
    async with websockets.connect(live_url(web_hub), additional_headers=cookie) as ws:
        await ws.recv()
        junk = ["{", "[]", "null", json.dumps({"select": 5}), json.dumps({"select": "x" * 4000}),
                "x" * 5000, json.dumps({"select": {"a": [1] * 100}}), json.dumps({"select": "bench-1"})]
        for i in range(5000):
            await ws.send(junk[i % len(junk)])
        me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        web_hub.web.bridge.publish({"type": "event", "event": {"message": "after the flood"}})
        async with asyncio.timeout(20):
            while "after the flood" not in await ws.recv():
                pass
    async with websockets.connect(live_url(web_hub), additional_headers=cookie, max_size=None) as big:
        await big.recv()
        await big.send("x" * 200_000)  # past the 64 KiB a client message may have
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await big.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example",
                                    "file://", "http://127.0.0.1:1"])
async def test_a_page_of_another_origin_never_gets_the_stream(web_hub: Hub, client: httpx.AsyncClient,
                                                             origin: str) -> None:
    token = (await signed_in(client))["token"]
    headers = {"Cookie": f"labedge_session={token}", "Origin": origin}
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(live_url(web_hub), additional_headers=headers)
    assert refused.value.response.status_code == 403
    assert not web_hub.web.bridge.clients


async def test_no_session_or_a_signed_out_one_gets_no_stream(web_hub: Hub, client: httpx.AsyncClient) -> None:
    me = await signed_in(client)
    await client.post("/api/logout", headers={"X-CSRF-Token": me["csrf_token"]})
    for headers in ({}, {"Cookie": f"labedge_session={me['token']}"}, {"Authorization": "Bearer nope"},
                    {"Cookie": "labedge_session="}):
        async with websockets.connect(live_url(web_hub), additional_headers=headers) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_an_open_stream_ends_when_its_sign_in_does(web_hub: Hub, client: httpx.AsyncClient) -> None:
    from pathlib import Path

    me = await signed_in(client)
    viewer = await signed_in(client, VIEWER)
    streams = []
    for token in (me["token"], viewer["token"]):
        ws = await websockets.connect(live_url(web_hub),
                                      additional_headers={"Authorization": f"Bearer {token}"})
        await ws.recv()
        streams.append(ws)
    await client.post("/api/logout", headers={"Authorization": f"Bearer {me['token']}"})
    path = Path(web_hub.config.source)  # and the viewer is removed from hub.yaml
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.strip().startswith(f"{VIEWER}:")) + "\n")
    for ws in streams:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
