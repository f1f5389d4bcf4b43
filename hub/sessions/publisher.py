"""The retained `lab/hub/sessions/U`: each unit's newest session, published on every change.

A change of state is published at once; upload progress at most every
`PROGRESS_PERIOD_S` per unit (the latest figures always go out). The
payload is built when it is sent, from the session log and the uploader,
so it shows the truth at that moment. After a reconnect every unit's is
published again. A unit the hub knows (`known_units`: its `$birth` seen,
the script, `watch:`) that has no session in the log gets its retained
message cleared: one left by a session log since moved aside is not the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from hub.sessions.model import Session, UploadProgress
from hub.sessions.service import SessionService
from lecis.clock import Clock
from lecis.errors import LabedgeError
from lecis.topics import Topics
from lecis.wire import to_bytes

log = logging.getLogger("labedge.hub.sessions")

PROGRESS_PERIOD_S = 1.0

Publish = Callable[[str, bytes, bool], Awaitable[None]]


class SessionPublisher:
    """`async with SessionPublisher(service, publish, topics, clock):` until the hub closes."""

    def __init__(self, service: SessionService, publish: Publish, topics: Topics, clock: Clock,
                 period_s: float = PROGRESS_PERIOD_S,
                 known_units: Callable[[], set[str]] | None = None) -> None:
        self.service = service
        self.known_units = known_units
        self._cleared: set[str] = set()  # units without a session whose retained message was cleared
        self.publish = publish
        self.topics = topics
        self.clock = clock
        self.period_s = period_s
        self._urgent: set[str] = set()
        self._progress: set[str] = set()
        self._last: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        service.listeners.append(self.changed)
        service.progress_listeners.append(self.progressed)

    async def __aenter__(self) -> SessionPublisher:
        self._all_units()
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="session-topics")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.service.listeners.remove(self.changed)
        self.service.progress_listeners.remove(self.progressed)

    def changed(self, session: Session) -> None:
        self._urgent.add(session.unit)
        self._wake.set()

    def progressed(self, session: Session, progress: UploadProgress) -> None:
        self._progress.add(session.unit)
        self._wake.set()

    async def republish(self) -> None:
        """Every unit's again (a connect listener: the broker may have lost the retained ones)."""
        self._cleared.clear()
        self._all_units()
        self._wake.set()

    def unit_seen(self, unit: str) -> None:
        """A unit just became known (its `$birth`): a stale retained session of it is cleared."""
        if unit not in self._cleared and self.service.latest(unit) is None:
            self._urgent.add(unit)
            self._wake.set()

    def _all_units(self) -> None:
        for session in self.service.latest_per_unit():
            self._urgent.add(session.unit)
        if self.known_units is not None:
            try:
                self._urgent.update(self.known_units())
            except Exception:
                log.exception("the hub's known units could not be listed")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            now = self.clock.monotonic()
            due: float | None = None
            for unit in sorted(self._urgent | self._progress):
                ready = self._last.get(unit, -1e18) + self.period_s
                if unit not in self._urgent and now < ready:
                    due = ready if due is None else min(due, ready)
                    continue
                self._urgent.discard(unit)
                self._progress.discard(unit)
                if not await self._send(unit):
                    self._urgent.add(unit)  # sent again after the reconnect (republish) or the next change
            if due is not None and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, due - self.clock.monotonic())):
                        await self._wake.wait()
                self._wake.set()

    async def _send(self, unit: str) -> bool:
        session = self.service.latest(unit)
        if session is None:
            if unit in self._cleared:
                return True
            payload = b""  # retained and empty: the broker forgets what it held for this unit
        else:
            payload = to_bytes(session.to_json(self.service.progress(session.id)))
        try:
            await self.publish(self.topics.hub_session(unit), payload, True)
        except (LabedgeError, ConnectionError) as exc:
            log.debug("lab/hub/sessions/%s not published (%s); again once connected", unit, exc)
            return False
        except Exception:
            log.exception("publishing the session of %s failed", unit)
            return False
        self._last[unit] = self.clock.monotonic()
        self.published += 1
        if session is None:
            self._cleared.add(unit)
        return True
