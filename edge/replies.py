"""Replies to commands, remembered by id so a repeated id gets the earlier outcome."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from lecis.clock import Clock, iso_ts
from lecis.commands import ReplyStatus, reply_payload

Send = Callable[[str, dict[str, Any]], None]


class ReplyLog:
    """The last reply sent for each recent command id (bounded, oldest forgotten first)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def remember(self, command_id: str, payload: dict[str, Any]) -> None:
        self._last[command_id] = payload
        self._last.move_to_end(command_id)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)

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
        if status in (ReplyStatus.DONE, ReplyStatus.FAILED, ReplyStatus.REJECTED):
            self.final = True
        if self.command_id is not None:
            self._log.remember(self.command_id, payload)
        self._send(self.topic, payload)

    def failed(self, message: str, param: str | None = None) -> None:
        self(ReplyStatus.FAILED, {"kind": "execution", "param": param, "message": message})
