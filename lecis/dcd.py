"""Device Capability Dataset (DCD): what a module is, reads, accepts and must never do.

These dataclasses are what `lecis.dcd_loader` builds from a YAML file after
checking it; the edge unit builds its modules from them and the unit's
`$birth` describes them to the world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from lecis.errors import CommandInvalid

ParamType = Literal["number", "integer", "string", "boolean"]
ControllerLossPolicy = Literal["off", "hold"]

_FROM_DRIVER_SPECS = ("INSTRUMENT_DRIVERS", "EQUIPMENT_DRIVERS", "DRIVERS", "EZO_PROBES")


def __getattr__(name: str) -> Any:
    # Driver names are listed once, in lecis.driver_specs (which imports this module).
    if name in _FROM_DRIVER_SPECS:
        import lecis.driver_specs

        return getattr(lecis.driver_specs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ParamSpec:
    """One command parameter: its type, bounds and whether it must be given."""

    name: str
    type: ParamType = "number"
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    max_length: int = 64
    default: Any = None
    unit: str | None = None

    def check(self, value: Any) -> Any:
        """Return `value` if it fits, else raise CommandInvalid naming this parameter."""
        name = self.name
        if self.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CommandInvalid(f"{name} must be a {self.type}, got {type(value).__name__}", name)
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer too large for a float, such as 10**400
                finite = False
            if not finite:
                raise CommandInvalid(f"{name} must be a finite number that fits a float", name)
            if self.type == "integer" and not (isinstance(value, int) or float(value).is_integer()):
                raise CommandInvalid(f"{name} must be a whole number, got {value}", name)
            if self.minimum is not None and value < self.minimum:
                raise CommandInvalid(f"{name} must be at least {self.minimum:g}, got {value:g}", name)
            if self.maximum is not None and value > self.maximum:
                raise CommandInvalid(f"{name} must be at most {self.maximum:g}, got {value:g}", name)
            return int(value) if self.type == "integer" else float(value)
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise CommandInvalid(f"{name} must be true or false", name)
            return value
        if not isinstance(value, str):
            raise CommandInvalid(f"{name} must be a string, got {type(value).__name__}", name)
        if len(value) > self.max_length:
            raise CommandInvalid(f"{name} must be at most {self.max_length} characters", name)
        if self.choices is not None and value not in self.choices:
            raise CommandInvalid(f"{name} must be one of {', '.join(self.choices)}, got {value!r}", name)
        if self.choices is None and not all(c.isalnum() or c in "._- " for c in value):
            raise CommandInvalid(f"{name} may hold only letters, digits, space and . _ -", name)
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "required": self.required}
        for key, value in (("min", self.minimum), ("max", self.maximum), ("unit", self.unit),
                           ("default", self.default)):
            if value is not None:
                out[key] = value
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if self.type == "string":
            out["max_length"] = self.max_length  # so a reader of $birth checks as the unit does
        return out


@dataclass(frozen=True)
class CommandSpec:
    """A device command a module accepts, beyond the standard LECIS ones.

    `wire` is, for serial instruments, the text sent to the device with
    `{param}` placeholders filled from validated arguments; `expect` is an
    optional regular expression the answer line must match.
    """

    name: str
    params: tuple[ParamSpec, ...] = ()
    wire: str | None = None
    expect: str | None = None
    description: str = ""

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Checked arguments with defaults filled; raises CommandInvalid at the first bad one."""
        known = {p.name for p in self.params}
        for key in args:
            if key not in known:
                wanted = ", ".join(sorted(known)) or "none"
                raise CommandInvalid(f"{self.name} takes no parameter {key!r} (parameters: {wanted})", key)
        out: dict[str, Any] = {}
        for spec in self.params:
            if spec.name not in args:
                if spec.required:
                    raise CommandInvalid(f"{self.name} needs parameter {spec.name!r}", spec.name)
                if spec.default is not None:
                    out[spec.name] = spec.default
                continue
            out[spec.name] = spec.check(args[spec.name])
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "params": {p.name: p.describe() for p in self.params},
            "description": self.description,
        }


@dataclass(frozen=True)
class ReadingSpec:
    """A value a module reports: its name, unit and the range a plausible reading lies in."""

    name: str
    unit: str
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "range": [self.minimum, self.maximum]}


@dataclass(frozen=True)
class Dcd:
    """A checked DCD. Driver-specific settings live in `settings`, already type-checked."""

    module: str
    driver: str
    source: str  # file the DCD came from, for messages
    kind: Literal["instrument", "equipment"]
    readings: tuple[ReadingSpec, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    on_controller_loss: ControllerLossPolicy = "off"
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    line: int | None = None  # line of the `module:` key, for messages

    def command(self, name: str) -> CommandSpec | None:
        for spec in self.commands:
            if spec.name == name:
                return spec
        return None

    def describe(self) -> dict[str, Any]:
        """This module's part of `$birth`."""
        return {
            "kind": self.kind,
            "driver": self.driver,
            "description": self.description,
            "readings": [r.describe() for r in self.readings],
            "commands": {c.name: c.describe() for c in self.commands},
            "on_controller_loss": self.on_controller_loss,
        }
