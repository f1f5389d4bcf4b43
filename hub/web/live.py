"""The live stream to browsers: the hub's MQTT subscription bridged to WebSocket clients.

Messages from the `LabView` (unit, module, points, event, mark, experiment,
session) are gathered and sent every `FLUSH_S` as one JSON array frame per
client. A client says which unit's readings it wants
(`{"select": "bench-1"}`; everything else reaches every client). Each client
has a bounded queue of frames (MAX_FRAMES, and MAX_BYTES of text): one that
stops reading is dropped when it fills (closed with 1013), so a stuck
browser never grows the hub's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("labedge.hub.web.live")

FLUSH_S = 0.1
MAX_FRAMES = 200  # per client: 20 s of frames at FLUSH_S; beyond, the client is dropped
MAX_BYTES = 4_000_000  # and at most this much text waiting for it, however big the frames


class LiveClient:
    def __init__(self, name: str, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_BYTES) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.select: str | None = None  # the unit whose points it wants (None: every unit's)
        self.frames: asyncio.Queue[str | None] = asyncio.Queue(max_frames)
        self.dropped = False
        self.gone = asyncio.Event()  # set when dropped: its handler stops a send stuck on a full socket

    def wants(self, message: dict[str, Any]) -> bool:
        return message.get("type") != "points" or self.select is None or message.get("unit") == self.select

    def offer(self, frame: str) -> bool:
        """Queue a frame; False (and the client marked dropped) when its queue is full."""
        if self.dropped:
            return False
        if self.queued_bytes + len(frame) > self.max_bytes or self.frames.full():
            self.dropped = True
            self.gone.set()
            with contextlib.suppress(asyncio.QueueEmpty):
                self.frames.get_nowait()  # room for the end marker
            self.frames.put_nowait(None)
            return False
        self.frames.put_nowait(frame)
        self.queued_bytes += len(frame)
        return True

    async def next_frame(self) -> str | None:
        frame = await self.frames.get()
        if frame is not None:
            self.queued_bytes -= len(frame)
        return frame


class LiveBridge:
    """`async with LiveBridge():` the flusher task; `publish()` from anywhere on the loop."""

    def __init__(self, flush_s: float = FLUSH_S, max_frames: int = MAX_FRAMES,
                 max_bytes: int = MAX_BYTES) -> None:
        self.flush_s = flush_s
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.clients: set[LiveClient] = set()
        self.stats = {"frames": 0, "dropped_clients": 0, "messages": 0}
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def publish(self, message: dict[str, Any]) -> None:
        if not self.clients:
            return
        self._pending.append(message)
        self.stats["messages"] += 1
        self._wake.set()

    def connect(self, name: str) -> LiveClient:
        client = LiveClient(name, self.max_frames, self.max_bytes)
        self.clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        self.clients.discard(client)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        frames: dict[str | None, str] = {}
        for client in list(self.clients):
            frame = frames.get(client.select)
            if frame is None:
                chosen = [m for m in pending if client.wants(m)]
                frame = frames[client.select] = json.dumps(chosen, separators=(",", ":"),
                                                            allow_nan=False, default=str)
            if frame == "[]":
                continue
            if not client.offer(frame):
                self.clients.discard(client)
                self.stats["dropped_clients"] += 1
                log.warning("dashboard client %s stopped reading; dropped (%d frames, %d bytes waiting)",
                            client.name, client.frames.qsize(), client.queued_bytes)
        self.stats["frames"] += 1

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.flush_s)  # gather what arrives meanwhile into one frame
            try:
                self.flush()
            except Exception:  # the stream is a view: one bad message must not end it
                log.exception("the live stream could not send a frame")
                self._pending = []

    async def __aenter__(self) -> LiveBridge:
        self._task = asyncio.create_task(self._run(), name="web-live")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.frames.put_nowait(None)


Publish = Callable[[dict[str, Any]], None]
