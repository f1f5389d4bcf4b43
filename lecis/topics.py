"""The one place MQTT topic names are built and parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass

UNIT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MODULE_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
TOPIC_ROOT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/-]{0,63}$")

UNIT_CMD = "$cmd"
HUB_SEGMENT = "hub"  # lab/hub/... is the hub's own: a unit of this id would never be heard


def reserved_unit_id(unit: str) -> str | None:
    """Why `unit` (a valid UNIT_ID) cannot name a unit, or None."""
    if unit == HUB_SEGMENT:
        return (f"unit id {unit!r} is reserved: {HUB_SEGMENT}/... topics are the hub's own, and the hub "
                "ignores units' messages there; choose another id, e.g. bench-1")
    return None


@dataclass(frozen=True)
class Topics:
    """Topic names under one installation's root (default `lab`)."""

    root: str = "lab"

    def unit_state(self, unit: str) -> str:
        return f"{self.root}/{unit}/$state"

    def birth(self, unit: str) -> str:
        return f"{self.root}/{unit}/$birth"

    def unit_cmd(self, unit: str) -> str:
        return f"{self.root}/{unit}/$cmd"

    def unit_reply(self, unit: str) -> str:
        return f"{self.root}/{unit}/$reply"

    def button(self, unit: str) -> str:
        return f"{self.root}/{unit}/$button"

    def module_state(self, unit: str, module: str) -> str:
        return f"{self.root}/{unit}/{module}/state"

    def data(self, unit: str, module: str) -> str:
        return f"{self.root}/{unit}/{module}/data"

    def event(self, unit: str, module: str) -> str:
        return f"{self.root}/{unit}/{module}/event"

    def cmd(self, unit: str, module: str) -> str:
        return f"{self.root}/{unit}/{module}/cmd"

    def reply(self, unit: str, module: str) -> str:
        return f"{self.root}/{unit}/{module}/reply"

    # ---- subscription filters ----------------------------------------------------------------
    def module_filter(self, unit: str, leaf: str) -> str:
        """Every module's `leaf` (`cmd`, `reply`, `data`, `event`, `state`) of one unit."""
        return f"{self.root}/{unit}/+/{leaf}"

    def module_cmd_filter(self, unit: str) -> str:
        return self.module_filter(unit, "cmd")

    def module_reply_filter(self, unit: str) -> str:
        return self.module_filter(unit, "reply")

    def unit_filter(self, unit: str) -> str:
        """Everything one unit publishes or is sent."""
        return f"{self.root}/{unit}/#"

    def every_unit_filter(self, leaf: str) -> str:
        """One unit topic (`$state`, `$birth`, `$reply`) of every unit; it matches `lab/hub/<leaf>` too."""
        return f"{self.root}/+/{leaf}"

    def every_module_filter(self, leaf: str) -> str:
        """One module leaf of every unit (`lab/+/+/data`); `state` matches `lab/hub/experiment/state` too."""
        return f"{self.root}/+/+/{leaf}"

    def all_filter(self) -> str:
        """Everything under this root: every unit and the hub."""
        return f"{self.root}/#"

    # ---- the hub ------------------------------------------------------------------------------
    def hub_state(self) -> str:
        return f"{self.root}/{HUB_SEGMENT}/$state"

    def hub_cmd(self) -> str:
        return f"{self.root}/{HUB_SEGMENT}/$cmd"

    def hub_reply(self) -> str:
        return f"{self.root}/{HUB_SEGMENT}/$reply"

    def hub_session(self, unit: str) -> str:
        return f"{self.root}/{HUB_SEGMENT}/sessions/{unit}"

    def hub_sessions_filter(self) -> str:
        return f"{self.root}/{HUB_SEGMENT}/sessions/+"

    def hub_experiment(self, subtopic: str) -> str:
        """`lab/hub/experiment/<subtopic>` (the hub documents its subtopics in docs/protocol.md)."""
        return f"{self.root}/{HUB_SEGMENT}/experiment/{subtopic}"

    def split(self, topic: str) -> tuple[str, str, str] | None:
        """(unit, module or '$…', leaf) for a unit topic under this root, else None.

        `lab/u/$state` gives ("u", "$state", ""); `lab/u/ph1/data` gives ("u", "ph1", "data").
        """
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix):].split("/")
        if len(parts) == 2 and parts[1].startswith("$"):
            return parts[0], parts[1], ""
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        return None
