"""What a driver spec is: its settings (name, type, default, bounds, help), readings and built-in commands.

A `SettingSpec` reads its DCD key through `lecis.yaml_loader.Fields`, so the
DCD loader and a driver's typed settings apply one rule with one message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lecis.dcd import CommandSpec, ReadingSpec
from lecis.yaml_loader import MISSING, Fields, YPath, describe

SettingType = Literal["number", "integer", "string", "boolean", "pin", "list"]
PIN_TEXT = re.compile(r"^(?:GPIO|BCM)(\d{1,2})$", re.IGNORECASE)
PIN_RULE = "a BCM pin number 0 to 27 (e.g. 17 or GPIO17)"


def read_pin(f: Fields, path: YPath, *, required: bool = False, nullable: bool = False) -> int | None:
    """A BCM pin number from `17`, `GPIO17` or `BCM17`; anything else is a problem."""
    value = f.value(path)
    if value is MISSING or (value is None and nullable):
        if required:
            f.problem(path, f"missing; expected {PIN_RULE}")
        return None
    match = PIN_TEXT.match(value) if isinstance(value, str) else None
    number = int(match.group(1)) if match else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 27:
        shown = value if isinstance(value, (int, str)) and not isinstance(value, bool) else describe(value)
        f.problem(path, f"pin {shown} does not exist on the Raspberry Pi header; "
                        "use a BCM number 0 to 27 (e.g. 17 or GPIO17)")
        return None
    return number


@dataclass(frozen=True)
class SettingSpec:
    """One driver setting of a DCD (a top-level key such as `port` or `max_on_s`).

    `default` is what an absent key means (None with `nullable`: "the driver's
    default"); `above`/`minimum`/`maximum` bound numbers, `choices` any type;
    `expected` names a string's form in messages; `missing` replaces the
    message for a required key that is absent; `items` are a list's allowed items.
    """

    name: str
    type: SettingType
    help: str
    default: Any = None
    required: bool = False
    nullable: bool = False
    above: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: re.Pattern[str] | None = None
    expected: str = "a string"
    allow_empty: bool = False
    missing: str | None = None
    items: tuple[str, ...] = ()

    def read(self, f: Fields) -> Any:
        """The setting's value from the document, or its default with a problem recorded."""
        path: YPath = (self.name,)
        if self.missing is not None and f.value(path) is MISSING:
            f.problem(path, f"missing; {self.missing}")
            return self.default
        if self.type == "number":
            return f.number(path, self.default, above=self.above, minimum=self.minimum, maximum=self.maximum,
                            required=self.required, nullable=self.nullable)
        if self.type == "integer":
            return f.integer(path, self.default, minimum=_int(self.minimum), maximum=_int(self.maximum),
                             choices=self.choices, required=self.required)
        if self.type == "string":
            return f.string(path, self.default, required=self.required, nullable=self.nullable,
                            choices=self.choices, pattern=self.pattern, expected=self.expected,
                            allow_empty=self.allow_empty)
        if self.type == "boolean":
            return f.boolean(path, self.default)
        if self.type == "pin":
            return read_pin(f, path, required=self.required, nullable=self.nullable)
        return self._read_list(f, path)

    def _read_list(self, f: Fields, path: YPath) -> Any:
        value = f.value(path)
        if value is MISSING:
            return list(self.default)
        if not isinstance(value, list) or not value or any(v not in self.items for v in value) \
                or len(set(value)) != len(value):
            shown = " and/or ".join(f'"{item}"' for item in self.items)
            f.problem(path, f"expected a list of {shown} (in quotes), got {describe(value)}")
            return list(self.default)
        return list(value)

    def describe(self) -> dict[str, Any]:
        """The setting for documentation and `labedge script check`."""
        out: dict[str, Any] = {"type": self.type, "required": self.required or self.missing is not None,
                               "help": self.help}
        for key, value in (("default", self.default), ("above", self.above), ("min", self.minimum),
                           ("max", self.maximum)):
            if value is not None:
                out[key] = value
        if self.nullable:
            out["nullable"] = True
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if self.items:
            out["items"] = list(self.items)
        return out


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


Settings = dict[str, Any]


@dataclass(frozen=True)
class DriverSpec:
    """Everything the `lecis` side knows of a driver; the driver class itself lives in `edge`.

    `readings(settings)` gives the built-in readings (a DCD may narrow their
    ranges), or is None when the DCD declares its readings (`line`).
    `commands(settings)` gives the built-in device commands; `extensible` says
    whether a DCD may declare more. `check(f, settings)` adds the rules that
    span settings. `settings_type` is the typed settings class drivers get.
    """

    name: str
    kind: Literal["instrument", "equipment"]
    help: str
    driver_class: str  # "module.path:ClassName", imported by the unit only
    settings: tuple[SettingSpec, ...]
    settings_type: type[Any]
    commands: Callable[[Settings], tuple[CommandSpec, ...]]
    readings: Callable[[Settings], tuple[ReadingSpec, ...]] | None = None
    extensible: bool = False
    check: Callable[[Fields, Settings], None] | None = None
    on_controller_loss: Literal["off", "hold"] = "off"
    keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(s.name for s in self.settings))

    def read_settings(self, f: Fields) -> Settings:
        values = {spec.name: spec.read(f) for spec in self.settings}
        if self.check is not None:
            self.check(f, values)
        return values

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "help": self.help,
                "settings": {s.name: s.describe() for s in self.settings},
                "dcd_commands": self.extensible, "dcd_readings": self.readings is None}
