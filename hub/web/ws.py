"""`/api/live`: the WebSocket a signed-in page reads its live data from (see hub/web/live.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hub.web.deps import COOKIE, WebContext, principal_of
from hub.web.live import LiveClient

router = APIRouter()
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013  # "try again later": the client fell behind and was dropped
MAX_CLIENT_MESSAGE = 4096
SIGN_IN_CHECK_S = 1.0  # an open stream ends this soon after its sign-in does
MAX_CLIENTS = 128  # open streams in all: each may hold up to live.MAX_BYTES waiting, so they are bounded
MAX_PER_USER = 32  # one user (a leaked token, a script in a loop) cannot take every place


def same_origin(ws: WebSocket) -> bool:
    """A browser always sends Origin: it must be this hub (no other site may open the stream)."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser (a script with a bearer token)
    return urlsplit(origin).netloc == ws.headers.get("host", "")


def hello(ctx: WebContext) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "hello", "units": ctx.view.snapshot(),
                                  "experiment": {"hub": ctx.hub.config.hub,
                                                 "has_script": ctx.hub.controller is not None,
                                                 **ctx.hub.status()}}]
    svc = ctx.sessions()
    if svc is not None:
        for unit in sorted(ctx.view.units):
            session = svc.current(unit)
            if session is not None:
                out.append({"type": "session", "session": session.to_json(svc.progress(session.id))})
    return out


@router.websocket("/api/live")
async def live(ws: WebSocket) -> None:
    ctx: WebContext = ws.app.state.ctx
    auth = ws.headers.get("authorization", "")
    bearer = auth[7:] if auth.lower().startswith("bearer ") else None
    who = principal_of(ctx, bearer, ws.cookies.get(COOKIE))
    if not same_origin(ws):
        await ws.close()  # refused at the handshake (403): another site's page
        return
    await ws.accept()
    if who is None:  # accepted first so that the page reads the code and shows the sign-in
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="sign in first")
        return
    await ctx.fill_last_readings()
    peer = f"{who.user}@{ws.client.host if ws.client else '?'}"
    mine = sum(1 for c in ctx.bridge.clients if c.name.split("@")[0] == who.user)
    if len(ctx.bridge.clients) >= MAX_CLIENTS or mine >= MAX_PER_USER:
        why = (f"user {who.user} has {mine} live streams open already (at most {MAX_PER_USER})"
               if mine >= MAX_PER_USER else f"the hub serves {MAX_CLIENTS} live streams already")
        await ws.close(code=CLOSE_TOO_SLOW, reason=f"{why}; close another page and reload")
        return
    client = ctx.bridge.connect(peer)
    client.offer(json.dumps(hello(ctx), default=str))
    sender = asyncio.create_task(_send(ws, client))
    receiver = asyncio.create_task(_receive(ws, client))
    dropped = asyncio.create_task(client.gone.wait())
    signed_out = asyncio.create_task(_until_signed_out(ctx, who.token))
    tasks = (sender, receiver, dropped, signed_out)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ctx.bridge.disconnect(client)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        code = CLOSE_TOO_SLOW if client.dropped else CLOSE_UNAUTHORIZED if signed_out.done() and not \
            signed_out.cancelled() else 1000
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await ws.close(code=code, reason="signed out" if code == CLOSE_UNAUTHORIZED else "")


async def _until_signed_out(ctx: WebContext, token: str) -> None:
    """Returns once the stream's sign-in ended (signed out, expired, the user removed or re-passworded)."""
    while ctx.auth.still_valid(token):
        await asyncio.sleep(SIGN_IN_CHECK_S)


async def _send(ws: WebSocket, client: LiveClient) -> None:
    while True:
        frame = await client.next_frame()
        if frame is None:
            return
        await ws.send_text(frame)


async def _receive(ws: WebSocket, client: LiveClient) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            text = await ws.receive_text()
            if len(text) > MAX_CLIENT_MESSAGE:
                continue
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if isinstance(message, dict) and "select" in message:
                select = message["select"]
                client.select = select if isinstance(select, str) else None
