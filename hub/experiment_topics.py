"""`lab/hub/experiment/state` (retained) and `lab/hub/experiment/event`: the running experiment, outside.

The state is what `experiment.status` answers: state, run id, script version,
next due tasks, loop outputs, guards holding, readings lost. It is published
when it changes (the passing of time alone, `ts` and `elapsed_s`, is not a change) and after each reconnect.
Events are the script's log lines and the controller's own notices, as they
happen, not retained. Shapes in docs/protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lecis.clock import Clock, SystemClock, iso_ts
from lecis.errors import LabedgeError, WireEncodeError
from lecis.topics import Topics
from lecis.wire import to_bytes

log = logging.getLogger("labedge.hub.experiment")

Publish = Callable[[str, bytes, bool], Awaitable[None]]  # topic, payload, retain
CLOCK_FIELDS = frozenset({"elapsed_s"})  # they change every instant: not a change of the experiment


class ExperimentTopics:
    """Publishes the experiment's state and events through `publish` (the hub link)."""

    def __init__(self, publish: Publish, topics: Topics, hub_id: str, clock: Clock | None = None) -> None:
        self.publish = publish
        self.topics = topics
        self.hub_id = hub_id
        self.clock = clock or SystemClock()
        self.last: dict[str, Any] | None = None
        self.last_key: dict[str, Any] | None = None
        self.events_sent = 0

    @property
    def state_topic(self) -> str:
        return self.topics.hub_experiment("state")

    @property
    def event_topic(self) -> str:
        return self.topics.hub_experiment("event")

    async def state(self, status: Mapping[str, Any], force: bool = False) -> None:
        """Publish `status` (retained) when it differs from the last one, or with `force`."""
        body = {"hub": self.hub_id, **status}
        key = {k: v for k, v in body.items() if k not in CLOCK_FIELDS}
        if not force and key == self.last_key:
            return
        if await self._send(self.state_topic, {**body, "ts": iso_ts(self.clock.now())}, True):
            self.last, self.last_key = body, key

    async def republish(self) -> None:
        """After a reconnect: the retained state may be from before the hub went away."""
        if self.last is not None:
            await self.state({k: v for k, v in self.last.items() if k != "hub"}, force=True)

    async def event(self, level: str, code: str, message: str, origin: str = "",
                    data: Mapping[str, Any] | None = None) -> None:
        body = {"hub": self.hub_id, "level": level, "code": code, "message": message, "origin": origin,
                "data": dict(data or {}), "ts": iso_ts(self.clock.now())}
        if await self._send(self.event_topic, body, False):
            self.events_sent += 1

    async def _send(self, topic: str, body: dict[str, Any], retain: bool) -> bool:
        try:
            payload = to_bytes(body)
        except WireEncodeError as exc:  # a NaN in a loop output: say so rather than lose the state
            log.warning("%s not published: %s", topic, exc)
            return False
        try:
            await self.publish(topic, payload, retain)
        except (LabedgeError, ConnectionError) as exc:
            log.debug("%s not published now (%s); the next change or reconnect sends it", topic, exc)
            return False
        return True
