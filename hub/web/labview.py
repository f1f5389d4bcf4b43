"""What the dashboard shows of each unit, kept current from the hub's link.

The hub's link decodes every message once; `LabView` is handed the decoded
values (through `hub.web.tee`) and keeps per unit: presence and since when,
the `$birth` (modules, readings with units and ranges, commands), and per
module its LECIS state, outputs and last readings. Every change is also
passed to `notify` as a small JSON-ready dict for the live stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lecis.clock import Clock, iso_ts, parse_ts
from lecis.wire import Birth, Event, ModuleState, UnitState

Notify = Callable[[dict[str, Any]], None]
log = logging.getLogger("labedge.hub.web")

# What one unit (a broken or hostile one: it may publish anything under its own topics) can make the view
# hold; beyond, its messages are left out of the view (the recorder still has them) with one warning.
MAX_UNITS = 500
MAX_MODULES = 64
MAX_READINGS = 64  # reading names kept as a module's last values


@dataclass
class ModuleView:
    lecis: str | None = None
    control: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    state_ts: str | None = None
    last: dict[str, Any] = field(default_factory=dict)  # reading name -> value
    last_ts: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"lecis": self.lecis, "control": self.control, "outputs": self.outputs, "error": self.error,
                "state_ts": self.state_ts, "last": self.last, "last_ts": _iso(self.last_ts)}


@dataclass
class UnitView:
    unit: str
    state: str | None = None  # init, ready, disconnected, lost (None: only heard of)
    since: str | None = None
    boot: str | None = None
    birth: Birth | None = None
    modules: dict[str, ModuleView] = field(default_factory=dict)

    def module(self, name: str) -> ModuleView:
        view = self.modules.get(name)
        if view is None:
            view = self.modules[name] = ModuleView()
        return view

    def module_names(self) -> list[str]:
        described = self.birth.modules if self.birth is not None else {}
        return sorted(set(described) | set(self.modules))

    def to_json(self) -> dict[str, Any]:
        described = self.birth.modules if self.birth is not None else {}
        names = self.module_names()
        modules = []
        for name in names:
            view = self.modules.get(name) or ModuleView()
            spec = described.get(name)
            caps = spec.to_json() if spec is not None else {"kind": None, "driver": None, "readings": [],
                                                             "commands": {}}
            modules.append({"module": name, **caps, **view.to_json()})
        return {"unit": self.unit, "presence": self.state or "unknown", "online": self.state == "ready",
                "since": self.since, "boot": self.boot,
                "software": self.birth.version if self.birth is not None else None, "modules": modules}


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso_ts(datetime.fromtimestamp(epoch, UTC))


class LabView:
    """The lab as the dashboard sees it; fed synchronously from the link (never raises out)."""

    def __init__(self, clock: Clock, notify: Notify | None = None) -> None:
        self.clock = clock
        self.units: dict[str, UnitView] = {}
        self.notify = notify or (lambda message: None)
        self.looked_up: set[tuple[str, str]] = set()  # modules whose last reading was asked of the recorder
        self._warned: set[str] = set()

    def room(self, unit: str, module: str | None = None) -> bool:
        """Whether the view may hold this unit (and module); a warning the first time it may not."""
        view = self.units.get(unit)
        if view is None and len(self.units) >= MAX_UNITS:
            why = f"the dashboard shows at most {MAX_UNITS} units; {unit} and later ones are left out"
        elif module is not None and view is not None and module not in view.modules and \
                len(view.modules) >= MAX_MODULES:
            why = f"unit {unit} has more than {MAX_MODULES} modules; the dashboard leaves out {module} and on"
        else:
            return True
        key = unit if view is None else f"{unit}/"
        if key not in self._warned:
            self._warned.add(key)
            log.warning(why)
        return False

    def unit(self, name: str) -> UnitView:
        view = self.units.get(name)
        if view is None:
            view = self.units[name] = UnitView(name)
        return view

    def snapshot(self) -> list[dict[str, Any]]:
        return [self.units[name].to_json() for name in sorted(self.units)]

    def _changed(self, view: UnitView) -> None:
        self.notify({"type": "unit", "unit": view.to_json()})

    # ---- from the link ------------------------------------------------------------------------
    def on_unit_state(self, unit: str, state: UnitState) -> None:
        if not self.room(unit):
            return
        view = self.unit(unit)
        name = state.state.value
        if view.state != name:
            # The first time (a retained message) the unit's own time says since when; later, now. A
            # retained `lost` is the unit's will, stamped when it connected: its loss time is unknown.
            if view.state is None:
                view.since = None if name == "lost" else state.ts
            else:
                view.since = iso_ts(self.clock.now())
            view.state = name
        view.boot = state.boot
        self._changed(view)

    def on_birth(self, unit: str, birth: Birth) -> None:
        if not self.room(unit):
            return
        view = self.unit(unit)
        view.birth = birth
        self._changed(view)

    def on_module_state(self, unit: str, module: str, state: ModuleState) -> None:
        if not self.room(unit, module):
            return
        view = self.unit(unit)
        mod = view.module(module)
        before = dict(mod.outputs)
        mod.lecis, mod.control = state.lecis.value, state.control.value
        mod.outputs = dict(state.outputs)
        mod.error = None if state.error is None else state.error.to_json()
        mod.state_ts = state.ts
        self.notify({"type": "module", "unit": unit, "module": module, "state": mod.to_json()})
        for name, value in mod.outputs.items():
            switched = before and before.get(name) != value and not isinstance(value, str)
            if switched:  # a pump or heater switched (not a timestamp beside it): marked on the charts
                at = parse_ts(state.ts).timestamp()
                self.notify({"type": "mark", "unit": unit, "module": module, "ts": at, "kind": "output",
                             "label": f"{module} {_onoff(value)}" if name == "on"
                             else f"{module} {name} {_onoff(value)}"})

    def on_points(self, unit: str, module: str, points: Iterable[tuple[float, dict[str, float]]],
                  hist: bool = False) -> None:
        if not self.room(unit, module):
            return
        mod = self.unit(unit).module(module)
        out = []
        for ts, values in points:
            if mod.last_ts is None or ts >= mod.last_ts:
                mod.last_ts = ts
                mod.last.update(values)
                if len(mod.last) > MAX_READINGS:  # a module inventing names: the first ones stay
                    mod.last = dict(list(mod.last.items())[:MAX_READINGS])
            out.append([round(ts, 3), values])
        if out:
            self.notify({"type": "points", "unit": unit, "module": module, "points": out, "hist": hist})

    def unfilled(self) -> list[tuple[str, str]]:
        """Modules with no last reading that the recorder was not asked about yet (each once)."""
        return [(unit, module) for unit, view in self.units.items() for module in view.module_names()
                if (unit, module) not in self.looked_up
                and (module not in view.modules or view.modules[module].last_ts is None)]

    def fill_latest(self, unit: str, module: str, latest: dict[str, Any] | None) -> bool:
        """The recorder's newest reading of a module (after a restart), unless one came meanwhile; True
        when the module's card changed."""
        self.looked_up.add((unit, module))
        if latest is None or not latest.get("values"):
            return False
        mod = self.unit(unit).module(module)
        if mod.last_ts is not None:
            return False
        mod.last_ts = float(latest["ts"])
        mod.last = {**dict(latest["values"]), **mod.last}
        return True

    def on_event(self, unit: str, module: str, event: Event) -> None:
        self.notify({"type": "event", "event": {"unit": unit, "module": module, "ts": event.ts,
                                                "level": event.level, "code": event.code,
                                                "message": event.message, "source": "unit"}})


def _onoff(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)
