"""`async with WebServer(hub, config):` the dashboard and API inside the hub's lifespan.

It binds its socket itself (a port in use is a clear WebPortBusy, not an
exit from inside uvicorn), tees the hub's link handlers into the live view,
and runs uvicorn as a task without its signal handlers (the hub owns
SIGTERM). Closing stops uvicorn and puts the handlers back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from hub.config import HubConfig
from hub.web.actions import LabActions
from hub.web.auth import Authenticator
from hub.web.deps import WebContext
from hub.web.labview import LabView
from hub.web.live import LiveBridge
from hub.web.processes import Processes, server_url
from hub.web.settings import WebConfig
from hub.web.tee import HandlerTee
from lecis.errors import LabedgeError

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("labedge.hub.web")

POLL_S = 1.0  # the experiment's state and the controller's and recorder's events reach pages this often


class WebPortBusy(LabedgeError):
    """The dashboard's address cannot be bound."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the hub's own handlers stay


class WebServer:
    def __init__(self, hub: Hub, config: HubConfig) -> None:
        self.hub = hub
        self.config = config
        self.web = config.web or WebConfig()
        self.bridge = LiveBridge()
        self.view = LabView(hub.clock, self.bridge.publish)
        self.actions = LabActions(hub, self.view)
        source = Path(config.source)
        self.auth = Authenticator(config.users, hub.clock, self.web.session_idle_s,
                                  source if source.is_file() else None)
        self.tee = HandlerTee(hub.handlers, self.view, self.actions.feed_reply)
        self.ctx = WebContext(hub, self.auth, self.view, self.bridge, self.actions, self.web.cookie_secure,
                              Processes(server_url(self.web.supervisor)))
        self.port = self.web.port
        self._server: _Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://{self.web.host}:{self.port}/"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.web.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.web.host, self.web.port))
        except OSError as exc:
            sock.close()
            where = f"{self.web.host}:{self.web.port}"
            raise WebPortBusy(f"the dashboard cannot listen on {where} ({exc.strerror}); "
                              f"choose another web: port in {self.config.source}") from None
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def __aenter__(self) -> WebServer:
        from hub.web.app import build_app

        sock = self._bind()
        for unit in self.hub.plant.units if self.hub.plant is not None else ():
            self.view.unit(unit)  # the script's units are on the page before they are first heard from
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(sock.close)
            await stack.enter_async_context(self.bridge)
            self.tee.install()
            stack.callback(self.tee.uninstall)
            app = build_app(self.ctx)
            config = uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=True,
                                    forwarded_allow_ips="127.0.0.1", ws_max_size=64 * 1024,
                                    timeout_graceful_shutdown=2)
            self._server = _Server(config)
            task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
            self._tasks.append(task)
            stack.push_async_callback(self._stop)
            while not self._server.started:
                if task.done():
                    task.result()  # its failure, raised here
                    raise WebPortBusy("the dashboard stopped while starting")
                await asyncio.sleep(0.02)
            self._tasks.append(asyncio.create_task(self._poll(), name="web-poll"))
            self._stack = stack.pop_all()
        log.info("dashboard on %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ---- what the link does not carry: the experiment's state, its and the recorder's events --------
    def watch_sessions(self, service: Any) -> None:
        """Push every changed session (and its upload progress) to the pages."""
        def changed(session: Any, progress: Any = None) -> None:
            shown = session.to_json(progress or service.progress(session.id))
            self.bridge.publish({"type": "session", "session": shown})

        service.listeners.append(changed)
        service.progress_listeners.append(changed)

    async def _poll(self) -> None:
        last_state = ""
        since = self.hub.clock.now().timestamp()
        watched = None
        while True:
            await asyncio.sleep(POLL_S)
            try:
                sessions = self.ctx.sessions()
                if sessions is not None and sessions is not watched:
                    self.watch_sessions(sessions)
                    watched = sessions
                for unit in await self.ctx.fill_last_readings():  # units heard of since: their last values
                    self.view.notify({"type": "unit", "unit": self.view.units[unit].to_json()})
                if not self.bridge.clients:
                    since = self.hub.clock.now().timestamp()
                    continue
                status = {"hub": self.config.hub, "has_script": self.hub.controller is not None,
                          **self.hub.status()}
                text = json.dumps(status, sort_keys=True, default=str)
                if text != last_state:
                    last_state = text
                    self.bridge.publish({"type": "experiment", "experiment": status})
                since = await self._new_events(since)
            except Exception:  # a view: it goes on
                log.exception("the dashboard's poll failed")

    async def _new_events(self, since: float) -> float:
        found = await asyncio.to_thread(self.hub.recorder.events, start=since, limit=1000)
        for event in found:
            since = max(since, float(event["ts"]) + 1e-6)
            if event.get("source") == "unit":
                continue  # the link brought it already
            self.bridge.publish({"type": "event", "event": event})
            if event.get("source") == "controller" and (event.get("code") == "log"
                                                         or event.get("level") in ("warning", "alarm")):
                self.bridge.publish({"type": "mark", "unit": event.get("unit") or (event.get("data") or {})
                                     .get("unit"), "module": None, "ts": float(event["ts"]), "kind": "script",
                                     "label": f"{event.get('code')}: {event.get('message')}"[:120]})
        return since
