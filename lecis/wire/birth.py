"""`lab/U/$birth`: a unit's identity and every module's readings, commands and loss policy.

A module's commands decode into the same `lecis.dcd.CommandSpec` / `ParamSpec`
the unit checks arguments with, so a reader (the hub) can check a command
against a birth with `lecis.command_check` exactly as the unit will.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from lecis.dcd import CommandSpec, Dcd, ParamSpec, ParamType, ReadingSpec
from lecis.errors import CommandInvalid
from lecis.wire.fields import Obj, join, number_at
from lecis.wire.messages import Message

PARAM_TYPES = ("number", "integer", "string", "boolean")
KINDS = ("instrument", "equipment")
LOSS_POLICIES = ("off", "hold")
_TOP_KEYS = frozenset({"unit", "version", "boot", "ts", "modules"})


@dataclass(frozen=True)
class BirthModule:
    """One module as its unit describes it (what `Dcd.describe()` gives)."""

    kind: Literal["instrument", "equipment"]
    driver: str
    readings: tuple[ReadingSpec, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    on_controller_loss: Literal["off", "hold"] = "off"
    description: str = ""

    @classmethod
    def from_dcd(cls, dcd: Dcd) -> BirthModule:
        return cls(dcd.kind, dcd.driver, dcd.readings, dcd.commands, dcd.on_controller_loss, dcd.description)

    def command(self, name: str) -> CommandSpec | None:
        return next((c for c in self.commands if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "driver": self.driver, "description": self.description,
            "readings": [r.describe() for r in self.readings],
            "commands": {c.name: c.describe() for c in self.commands},
            "on_controller_loss": self.on_controller_loss,
        }

    @classmethod
    def from_obj(cls, o: Obj) -> BirthModule:
        kind = cast(Literal["instrument", "equipment"], o.choice("kind", KINDS))
        driver = o.string("driver", nonempty=True)
        readings = tuple(_reading(Obj(r, join(o.field("readings"), i)))
                         for i, r in enumerate(o.array("readings")))
        commands = o.obj("commands")
        specs = tuple(_command(commands.obj(name), name) for name in commands.value)
        loss = cast(Literal["off", "hold"], o.choice("on_controller_loss", LOSS_POLICIES))
        return cls(kind, driver, readings, specs, loss, o.string("description", default=""))


@dataclass(frozen=True)
class Birth(Message):
    """The whole `$birth`; `extra` keeps the other top-level fields (outbox, lease limits)."""

    unit: str
    version: str
    boot: str
    ts: str
    modules: dict[str, BirthModule] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "version": self.version, "boot": self.boot, "ts": self.ts,
                "modules": {name: m.to_json() for name, m in self.modules.items()}, **self.extra}

    @classmethod
    def from_json(cls, value: Any) -> Birth:
        o = Obj(value)
        unit, version = o.string("unit", nonempty=True), o.string("version")
        boot = o.string("boot", nonempty=True)
        ts = o.ts("ts")
        modules = o.obj("modules")
        decoded = {name: BirthModule.from_obj(modules.obj(name)) for name in modules.value}
        extra = {k: v for k, v in o.value.items() if k not in _TOP_KEYS}
        return cls(unit, version, boot, ts, decoded, extra)


def _reading(o: Obj) -> ReadingSpec:
    bounds = o.array("range")
    if len(bounds) != 2:
        raise o.fail("range", f"must be [min, max], got {len(bounds)} items")
    lo, hi = (None if b is None else number_at(b, join(o.field("range"), i)) for i, b in enumerate(bounds))
    return ReadingSpec(o.string("name", nonempty=True), o.string("unit"), lo, hi)


def _command(o: Obj, name: str) -> CommandSpec:
    params = o.obj("params", default=None)
    specs = () if params is None else tuple(_param(params.obj(p), p) for p in params.value)
    return CommandSpec(name, specs, description=o.string("description", default=""))


def _param(o: Obj, name: str) -> ParamSpec:
    ptype = cast(ParamType, o.choice("type", PARAM_TYPES))
    numeric = ptype in ("number", "integer")
    choices = None
    if ptype == "string" and "enum" in o.value:
        items = o.array("enum", nonempty=True)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise o.fail("enum", f"item {i} must be a string")
        choices = tuple(items)
    spec = ParamSpec(
        name, ptype, o.boolean("required", default=True),
        o.number("min", nullable=True, default=None) if numeric else None,
        o.number("max", nullable=True, default=None) if numeric else None,
        choices,
        o.integer("max_length", 1, 1_000_000) if ptype == "string" and "max_length" in o.value else 64,
        unit=o.string("unit", nullable=True, default=None),
    )
    if "default" not in o.value or o.value["default"] is None:
        return spec
    try:
        default = spec.check(o.value["default"])
    except (CommandInvalid, OverflowError) as exc:
        raise o.fail("default", f"does not fit the parameter: {exc}") from None
    return ParamSpec(spec.name, spec.type, spec.required, spec.minimum, spec.maximum, spec.choices,
                     spec.max_length, default, spec.unit)
