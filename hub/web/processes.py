"""The processes of the supervisord the hub runs under, read over supervisor's XML-RPC.

Where to ask: `web: {supervisor: URL}` in hub.yaml (`false`: never), else the
`SUPERVISOR_SERVER_URL` supervisord gives every child it starts (the lab's
`unix://DIR/supervisor.sock`; `unix:///var/run/supervisor.sock` on a Pi). A
hub started by hand has neither and the page says so. Answers are cached for
`CACHE_S` so that many open pages make one call, never one each.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import socket
import time
import xmlrpc.client
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from provisioning.supervisor_status import ProcessInfo

ENV = "SUPERVISOR_SERVER_URL"
CACHE_S = 2.0
TIMEOUT_S = 3.0
_UPTIME = re.compile(r"uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def server_url(configured: str | bool | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The supervisord to ask, or None (not configured, or the hub was not started by one)."""
    if configured is False:
        return None
    if isinstance(configured, str):
        return configured
    found = (os.environ if environ is None else environ).get(ENV, "").strip()
    return found or None


def uptime_s(description: str) -> int | None:
    """Seconds from supervisord's "pid 1234, uptime 1 day, 0:01:02" (None when not running)."""
    match = _UPTIME.search(description)
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


class Processes:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self._lock = asyncio.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def status(self) -> dict[str, Any]:
        if self.url is None:
            return {"supervisor": None, "processes": [],
                    "message": "this hub was not started by supervisord (no SUPERVISOR_SERVER_URL, and no "
                               "web: supervisor: in hub.yaml); no process states to show"}
        async with self._lock:  # one call at a time; the pages waiting meanwhile share its answer
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_S:
                return self._cached[1]
            answer = await asyncio.to_thread(self._read)
            self._cached = (time.monotonic(), answer)
            return answer

    def _read(self) -> dict[str, Any]:
        assert self.url is not None
        try:
            rows = read_processes(self.url, TIMEOUT_S)
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            return {"supervisor": self.url, "processes": [],
                    "message": f"no supervisord answers at {self.url} ({exc}); is it running?"}
        except Exception as exc:  # a garbled answer: the panel says so, the hub goes on
            return {"supervisor": self.url, "processes": [],
                    "message": f"supervisord at {self.url} gave an answer that cannot be read ({exc!r})"}
        return {"supervisor": self.url, "message": None,
                "processes": [{"name": r.name, "state": r.state, "pid": r.pid or None,
                               "uptime_s": uptime_s(r.description) if r.state == "RUNNING" else None,
                               "description": r.description} for r in rows]}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def read_processes(url: str, timeout: float) -> list[ProcessInfo]:
    """supervisord's getAllProcessInfo, each socket with its own timeout.

    Not provisioning.supervisor_status.process_info: it sets the process-wide default socket timeout
    for the call, which in the hub (other threads, the MQTT client) would leak into their sockets.
    """
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, url)
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        transport._get_connection = lambda: _UnixConnection(path, timeout)
    else:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        transport._get_connection = lambda: http.client.HTTPConnection(host, port, timeout=timeout)
    proxy: Any = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    rows: list[dict[str, Any]] = proxy.supervisor.getAllProcessInfo()
    out = []
    for row in rows:
        name = row["name"] if row["group"] == row["name"] else f"{row['group']}:{row['name']}"
        out.append(ProcessInfo(name, str(row["statename"]), str(row["description"]), int(row["pid"])))
    return out
