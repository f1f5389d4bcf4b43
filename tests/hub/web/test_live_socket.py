"""A real WebSocket client that stops reading: the hub drops it once its bounded buffer is full, and the
other pages go on receiving."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import httpx
import websockets

from hub.app import Hub
from tests.hub.web.conftest import signed_in


def stalled_client(port: int, token: str) -> socket.socket:
    """The handshake by hand, then never another read (a tiny receive buffer fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Cookie: labedge_session={token}\r\n\r\n").encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


async def test_a_client_that_stops_reading_is_dropped(web_hub: Hub, client: httpx.AsyncClient) -> None:
    token = (await signed_in(client))["token"]
    bridge = web_hub.web.bridge
    stalled = await asyncio.to_thread(stalled_client, web_hub.web.port, token)  # the hub shares this loop
    url = web_hub.web.url.replace("http", "ws") + "api/live"
    try:
        async with websockets.connect(url, additional_headers={"Cookie": f"labedge_session={token}"},
                                      max_size=None) as reader:
            await reader.recv()  # hello
            async with asyncio.timeout(60):
                while bridge.stats["dropped_clients"] == 0:
                    bridge.publish({"type": "event", "event": {"message": "x" * 200_000}})
                    await asyncio.sleep(0.12)
                    while True:  # the reading page keeps up
                        try:
                            async with asyncio.timeout(0.01):
                                await reader.recv()
                        except TimeoutError:
                            break
            assert len(bridge.clients) == 1
            assert all(c.queued_bytes <= c.max_bytes for c in bridge.clients)
            bridge.publish({"type": "event", "event": {"message": "still here"}})
            async with asyncio.timeout(5):
                while True:
                    frame = json.loads(await reader.recv())
                    if any(m.get("event", {}).get("message") == "still here" for m in frame):
                        break
    finally:
        stalled.close()
