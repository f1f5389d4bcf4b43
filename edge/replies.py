"""Replies to commands, remembered by id so a repeated id gets the earlier outcome.

With a DurableState behind it the log survives restarts of the unit process
(docs/durable.md gives the bounds), and a command the last process left
unfinished is answered `failed` after the restart.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lecis.clock import Clock, iso_ts
from lecis.commands import FINAL_STATUS_VALUES, FINAL_STATUSES, ReplyStatus, reply_payload

if TYPE_CHECKING:
    from edge.durable import DurableState

log = logging.getLogger("labedge.replies")
Send = Callable[[str, dict[str, Any]], None]
RESTARTED = "unit restarted while the command ran; its outputs were turned off, send it again if still wanted"


class ReplyLog:
    """The last reply sent for each recent command id (bounded, oldest forgotten first)."""

    def __init__(self, capacity: int = 10_000, store: DurableState | None = None) -> None:
        self.capacity = capacity
        self.store = store
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def remember(self, command_id: str, payload: dict[str, Any], topic: str = "") -> None:
        self._last[command_id] = payload
        self._last.move_to_end(command_id)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)
        if self.store is not None:
            try:
                self.store.put_reply(command_id, topic, payload)
            except (TypeError, ValueError):  # never in the way of the reply itself
                log.exception("reply to %r not kept on disk", command_id)

    def restore(self, clock: Clock) -> list[tuple[str, dict[str, Any]]]:
        """Load the store's replies (after `store.open()`); return (topic, `failed` reply) to send
        for each command the last process accepted and never finished."""
        if self.store is None:
            return []
        unfinished: list[tuple[str, dict[str, Any]]] = []
        for command_id, topic, payload in self.store.replies():
            self._last[command_id] = payload
            self._last.move_to_end(command_id)
            if payload.get("status") not in FINAL_STATUS_VALUES:
                failed = reply_payload(command_id, ReplyStatus.FAILED, iso_ts(clock.now()),
                                       {"kind": "execution", "param": None, "message": RESTARTED}, None)
                unfinished.append((topic, failed))
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)
        for topic, failed in unfinished:
            self.remember(failed["id"], failed, topic)
        return unfinished

    def get(self, command_id: str) -> dict[str, Any] | None:
        return self._last.get(command_id)


class Replier:
    """Sends the replies of one command to its reply topic, and remembers them."""

    def __init__(self, send: Send, log: ReplyLog, clock: Clock, topic: str, command_id: str | None) -> None:
        self._send = send
        self._log = log
        self._clock = clock
        self.topic = topic
        self.command_id = command_id
        self.final = False

    def __call__(
        self,
        status: ReplyStatus,
        error: dict[str, str | None] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        if self.final:
            return
        payload = reply_payload(self.command_id, status, iso_ts(self._clock.now()), error, result)
        if status in FINAL_STATUSES:
            self.final = True
        if self.command_id is not None:
            self._log.remember(self.command_id, payload, self.topic)
        self._send(self.topic, payload)

    def failed(self, message: str, param: str | None = None) -> None:
        self(ReplyStatus.FAILED, {"kind": "execution", "param": param, "message": message})
