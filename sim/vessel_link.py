"""The vessel follows a unit's outputs: it subscribes to the retained `lab/U/M/state` of each mapped module.

So in the lab the mock GPIO outputs of `labedge edge run` act on the water
the simulated EZO circuits read: `outputs.on` / `outputs.speed` of
`aeration`, `base_pump` and `heater` (by default) drive the vessel's roles;
the base pump's flow comes from its DCD's `ml_per_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lecis.dcd import Dcd
from lecis.errors import SettingInvalid, WireFormatError
from lecis.mqtt_session import MqttSession, SessionConfig
from lecis.topics import Topics
from lecis.wire import ModuleState, decode
from sim.vessel import ROLES, Vessel

log = logging.getLogger("labedge.sim.vessel")

#: Which equipment module acts on which role of the vessel, unless told otherwise.
DEFAULT_ROLES: Mapping[str, str] = {"aeration": "aeration", "base_pump": "base", "heater": "heater"}


@dataclass(frozen=True)
class OutputRole:
    module: str
    role: str
    ml_per_s: float | None = None  # the base pump's calibrated flow


def parse_roles(text: str) -> dict[str, str]:
    """`aeration=aeration,base_pump=base` -> {module: role}; SettingInvalid naming the bad item."""
    roles: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        module, sep, role = item.partition("=")
        if not sep or not module or role not in ROLES:
            raise SettingInvalid(f"{item!r} is not MODULE=ROLE with ROLE one of {', '.join(ROLES)}")
        roles[module] = role
    return roles


def roles_for(dcds: Iterable[Dcd], mapping: Mapping[str, str] = DEFAULT_ROLES) -> list[OutputRole]:
    """The unit's equipment modules that `mapping` names, with the base pump's ml_per_s from its DCD."""
    found = []
    for dcd in dcds:
        role = mapping.get(dcd.module)
        if role is None or dcd.kind != "equipment":
            continue
        rate = dcd.settings.get("ml_per_s")
        found.append(OutputRole(dcd.module, role, float(rate) if role == "base" and rate else None))
    return found


class VesselFollower:
    """Turns the unit's retained module states into `vessel.set_output` calls."""

    def __init__(self, vessel: Vessel, unit: str, roles: Iterable[OutputRole],
                 topics: Topics | None = None) -> None:
        self.vessel, self.unit = vessel, unit
        self.topics = topics or Topics()
        self.roles = {r.module: r for r in roles}
        self.applied: dict[str, tuple[bool, float]] = {}
        self.changed = asyncio.Event()  # set at every change applied (tests and tools wait on it)

    def subscriptions(self) -> list[str]:
        return [self.topics.module_state(self.unit, module) for module in sorted(self.roles)]

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = self.topics.split(topic)
        if parts is None or parts[0] != self.unit or parts[2] != "state" or parts[1] not in self.roles:
            return
        try:
            state = decode(ModuleState, payload)
        except WireFormatError as exc:
            log.warning("ignoring %s: %s", topic, exc)
            return
        role = self.roles[parts[1]]
        on = state.outputs.get("on") is True
        speed = state.outputs.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.0 <= speed <= 1.0:
            speed = 1.0
        if on and speed == 0.0:
            on = False
        level = (on, float(speed) if on else 1.0)
        if self.applied.get(role.module) == level:
            return
        self.applied[role.module] = level
        self.vessel.set_output(role.role, level[0], level[1], ml_per_s=role.ml_per_s)
        self.changed.set()
        log.info("%s/%s %s: vessel %s %s", self.unit, role.module, "on" if on else "off", role.role,
                 f"at speed {level[1]:g}" if on else "off")

    def session(self, config: SessionConfig) -> MqttSession:
        """An MQTT session subscribed to the mapped modules' states (retained ones arrive at once)."""
        return MqttSession(config, subscriptions=self.subscriptions(), on_message=self.on_message)
