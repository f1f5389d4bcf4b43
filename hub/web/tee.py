"""The dashboard listens beside the recorder and the controller: a tee on the hub's link handlers.

The hub's own handler runs first, unchanged; then the dashboard's, whose
failure is logged and never reaches the link. `uninstall()` puts the
originals back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hub.link import LinkHandlers
from hub.web.labview import LabView
from lecis.clock import parse_ts
from lecis.wire import Birth, Data, Event, ModuleState, UnitState

log = logging.getLogger("labedge.hub.web")


class HandlerTee:
    def __init__(self, handlers: LinkHandlers, view: LabView,
                 on_reply: Callable[[str, bytes], None] | None = None) -> None:
        self.handlers = handlers
        self.view = view
        self.on_reply = on_reply
        self._saved: dict[str, Any] = {}

    def install(self) -> None:
        h = self.handlers
        self._saved = {name: getattr(h, name) for name in
                       ("data", "event", "module_state", "unit_state", "birth", "reply", "data_bytes")}
        s = self._saved

        def data(unit: str, module: str, value: Data, payload: dict[str, Any], at: float) -> None:
            s["data"](unit, module, value, payload, at)
            self._safe(lambda: self.view.on_points(
                unit, module, [(parse_ts(r.ts).timestamp(), r.values) for r in value.readings], value.hist))

        def data_bytes(unit: str, module: str, payload: bytes, at: float) -> None:
            s["data_bytes"](unit, module, payload, at)
            self._safe(lambda: self._points(unit, module, payload, at))

        def event(unit: str, module: str, value: Event, payload: dict[str, Any], at: float) -> None:
            s["event"](unit, module, value, payload, at)
            self._safe(lambda: self.view.on_event(unit, module, value))

        def module_state(unit: str, module: str, value: ModuleState, payload: dict[str, Any],
                         at: float) -> None:
            s["module_state"](unit, module, value, payload, at)
            self._safe(lambda: self.view.on_module_state(unit, module, value))

        def unit_state(unit: str, value: UnitState) -> None:
            s["unit_state"](unit, value)
            self._safe(lambda: self.view.on_unit_state(unit, value))

        def birth(unit: str, value: Birth) -> None:
            s["birth"](unit, value)
            self._safe(lambda: self.view.on_birth(unit, value))

        def reply(topic: str, payload: bytes) -> None:
            s["reply"](topic, payload)
            if self.on_reply is not None:
                on_reply = self.on_reply
                self._safe(lambda: on_reply(topic, payload))

        h.data, h.event, h.module_state, h.unit_state, h.birth, h.reply = (
            data, event, module_state, unit_state, birth, reply)
        if s["data_bytes"] is not None:
            h.data_bytes = data_bytes

    def uninstall(self) -> None:
        for name, value in self._saved.items():
            setattr(self.handlers, name, value)
        self._saved = {}

    def _points(self, unit: str, module: str, payload: bytes, at: float) -> None:
        from hub.recorder.intake import DataRecord, decode_bytes

        record = decode_bytes(unit, module, "data", payload, at)
        if isinstance(record, DataRecord):
            self.view.on_points(unit, module, [(p.ts, p.values) for p in record.points], record.hist)

    @staticmethod
    def _safe(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # the dashboard is a view: it must never cost the hub a message
            log.exception("the dashboard could not take a message")
