"""Load and check a unit's `unit.yaml` and every DCD it lists, reporting all problems at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lecis.dcd import EQUIPMENT_DRIVERS, INSTRUMENT_DRIVERS, Dcd
from lecis.dcd_loader import read_dcd, read_pin
from lecis.errors import ConfigError, ConfigProblem
from lecis.topics import MODULE_ID, TOPIC_ROOT, UNIT_ID, reserved_unit_id
from lecis.unit_config import BrokerConfig, ButtonsConfig, OutboxConfig, UnitConfig
from lecis.yaml_loader import Fields, YamlDoc, YPath, field_name, load_yaml

WHAT = "a unit config: key: value lines such as unit: and modules:"
UNIT_KEYS = ("unit", "broker", "topic_root", "data_dir", "modules", "outbox", "buttons", "status_led",
             "max_lease_ttl_s")
BROKER_KEYS = ("host", "port", "username", "password", "keepalive_s", "tls_ca")
OUTBOX_KEYS = ("max_messages", "sync_interval_s")
BUTTON_KEYS = ("start_pin", "stop_pin", "estop_hold_s", "debounce_s", "pull_up")


def load_unit_config(path: Path, check_ports: bool = True) -> UnitConfig:
    """Load `unit.yaml` and its DCDs; raises ConfigError listing every problem of every file.

    With `check_ports`, what must exist on this machine is checked too: each
    instrument's serial port and the broker's TLS CA file. Turn it off to
    check a unit's files elsewhere (a laptop, CI).
    """
    return check_unit_config(path, os.path.exists if check_ports else None)


def check_unit_config(path: Path, exists: Callable[[str], bool] | None) -> UnitConfig:
    """`load_unit_config` with the existence test passed in (None: no test)."""
    doc = load_yaml(path, WHAT)
    f = Fields(doc)
    base = path.parent
    f.mapping((), UNIT_KEYS)
    unit = f.string(("unit",), None, required=True, pattern=UNIT_ID,
                    expected="a unit id (lower-case letters, digits and -, up to 32 characters, "
                             "e.g. bench-1)")
    if unit is not None and reserved_unit_id(unit) is not None:
        f.problem(("unit",), str(reserved_unit_id(unit)))
    broker = read_broker(f, base, exists)
    topic_root = f.string(("topic_root",), "lab", pattern=TOPIC_ROOT,
                          expected="a topic root (letters, digits, _, - and /, e.g. lab)")
    data_dir = f.string(("data_dir",), None, required=True, expected="a folder for the unit's data")
    f.mapping(("outbox",), OUTBOX_KEYS)
    outbox = OutboxConfig(f.integer(("outbox", "max_messages"), 1_000_000, minimum=1000),
                          f.number(("outbox", "sync_interval_s"), 1.0, above=0))
    f.mapping(("buttons",), BUTTON_KEYS)
    buttons = ButtonsConfig(read_pin(f, ("buttons", "start_pin"), nullable=True),
                            read_pin(f, ("buttons", "stop_pin"), nullable=True),
                            f.number(("buttons", "estop_hold_s"), 2.0, above=0),
                            f.number(("buttons", "debounce_s"), 0.05, minimum=0),
                            f.boolean(("buttons", "pull_up"), True))
    f.mapping(("status_led",), ("pin",))
    led = read_pin(f, ("status_led", "pin"), nullable=True)
    ttl = f.number(("max_lease_ttl_s",), 300.0, above=0)
    loaded = [_Loaded(*read_dcd(dcd_path)) for dcd_path in _module_paths(f, base)]
    problems = list(f.problems)
    for item in loaded:
        problems += item.problems
    unit_pins = (("the start button", ("buttons", "start_pin"), buttons.start_pin),
                 ("the stop button", ("buttons", "stop_pin"), buttons.stop_pin),
                 ("the status LED", ("status_led", "pin"), led))
    problems += _cross_checks(doc, unit_pins, loaded, exists)
    if problems or unit is None or data_dir is None:
        order = {doc.source: 0} | {item.source: i + 1 for i, item in enumerate(loaded)}
        raise ConfigError(sorted(problems, key=lambda p: (order.get(p.file, len(order)), p.line or 0)))
    return UnitConfig(unit, doc.source, broker, Path(os.path.abspath(base / Path(data_dir).expanduser())),
                      tuple(item.dcd for item in loaded if item.dcd is not None), topic_root, outbox, buttons,
                      led, ttl)


def read_broker(f: Fields, base: Path, exists: Callable[[str], bool] | None, *,
                required: bool = False) -> BrokerConfig:
    """The `broker:` mapping of a unit config or hub.yaml; `exists` checks the tls_ca file (None: not)."""
    p: YPath = ("broker",)
    f.mapping(p, BROKER_KEYS, required=required, what="a mapping such as {host: 127.0.0.1, port: 1883}")
    tls_ca = f.string(p + ("tls_ca",), None, nullable=True, expected="the path of a CA certificate file")
    if tls_ca is not None:
        tls_ca = str(base / Path(tls_ca).expanduser())
        if exists is not None and not exists(tls_ca):
            f.problem(p + ("tls_ca",), f"file {tls_ca} does not exist")
    return BrokerConfig(f.string(p + ("host",), "127.0.0.1"),
                        f.integer(p + ("port",), 1883, minimum=1, maximum=65535),
                        f.string(p + ("username",), None, nullable=True),
                        f.string(p + ("password",), None, nullable=True),
                        f.integer(p + ("keepalive_s",), 10, minimum=2),
                        tls_ca)


def _module_paths(f: Fields, base: Path) -> list[Path]:
    """The path of every listed DCD file that exists."""
    entries = f.value(("modules",))
    if not isinstance(entries, list) or not entries:
        f.problem(("modules",), "expected a list of DCD files with at least one entry (e.g. [dcd/ph1.yaml])")
        return []
    out: list[Path] = []
    seen: dict[Path, int] = {}
    for index, entry in enumerate(entries):
        where: YPath = ("modules", index)
        if not isinstance(entry, str) or not entry:
            f.problem(where, "expected the path of a DCD file, relative to this file")
            continue
        dcd_path = base / Path(entry).expanduser()
        if dcd_path in seen:
            f.problem(where, f"{entry} is listed twice (also modules[{seen[dcd_path]}])")
        elif not dcd_path.is_file():
            state = "is a folder, not a DCD file" if dcd_path.is_dir() else "does not exist"
            f.problem(where, f"DCD file {dcd_path} {state}")
        else:
            seen[dcd_path] = index
            out.append(dcd_path)
    return out


@dataclass
class _Loaded:
    """One listed DCD as read: the Dcd when sound, its document for line look-ups, its problems."""

    dcd: Dcd | None
    doc: YamlDoc | None
    problems: list[ConfigProblem]

    @property
    def source(self) -> str:
        return self.problems[0].file if self.doc is None else self.doc.source

    def fact(self, key: str) -> Any:
        """`module`, `pin`, `port` or `temperature_source`, read even from a DCD with other problems,
        so that one pass reports everything; None where the DCD itself is wrong about it."""
        if self.dcd is not None:
            return self.dcd.module if key == "module" else self.dcd.settings.get(key)
        driver = None if self.doc is None else self.doc.get(("driver",))
        if self.doc is None or (key == "pin" and driver not in EQUIPMENT_DRIVERS) \
                or (key != "pin" and key != "module" and driver not in INSTRUMENT_DRIVERS):
            return None
        if key == "pin":
            return read_pin(Fields(self.doc, []), ("pin",))
        value = self.doc.get((key,))
        ok = isinstance(value, str) and value and (key == "port" or MODULE_ID.match(value))
        return value if ok else None

    def problem(self, field: str, message: str) -> ConfigProblem:
        line = None if self.doc is None else self.doc.line_of((field,))
        return ConfigProblem(self.source, line, field, message)

    def where(self, field: str) -> str:
        line = None if self.doc is None else self.doc.line_of((field,))
        return f"{self.source}:{line}"


_BOARD = "the board of "


def _board_channel(item: _Loaded) -> tuple[str, str] | None:
    """(port, channel) of a module on a board (driver `bridge*`), else None."""
    dcd = item.dcd
    if dcd is None or not dcd.driver.startswith("bridge"):
        return None
    return str(dcd.settings["port"]), str(dcd.settings["channel"])


def _cross_checks(doc: YamlDoc, unit_pins: tuple[tuple[str, YPath, int | None], ...], loaded: list[_Loaded],
                  exists: Callable[[str], bool] | None) -> list[ConfigProblem]:
    """What only the whole unit shows: module ids, pins and ports used twice, temperature sources."""
    problems: list[ConfigProblem] = []
    by_id: dict[str, _Loaded] = {}
    pins: dict[int, str] = {}
    ports: dict[str, str] = {}
    channels: dict[tuple[str, str], str] = {}
    for label, path, pin in unit_pins:
        if pin is not None and pin in pins:
            problems.append(ConfigProblem(doc.source, doc.line_of(path), field_name(path),
                                          f"pin {pin} is already used by {pins[pin]}"))
        elif pin is not None:
            pins[pin] = f"{label} ({doc.source}:{doc.line_of(path)})"
    for item in loaded:
        module, pin, port = item.fact("module"), item.fact("pin"), item.fact("port")
        if module in by_id:
            first = by_id[module].where("module")
            problems.append(item.problem("module", f"duplicate module id {module!r}: already used by "
                                                   f"{first}; ids must be unique in a unit"))
        elif module is not None:
            by_id[module] = item
        name = module or item.source
        if pin is not None and pin in pins:
            problems.append(item.problem("pin", f"pin {pin} is already used by {pins[pin]}"))
        elif pin is not None:
            pins[pin] = f"module {name} ({item.where('pin')})"
        board = _board_channel(item)
        if port is not None and board is not None and ports.get(port, "").startswith(_BOARD):
            # Modules on one board share its port; each has its own channel.
            if board in channels:
                problems.append(item.problem("channel", f"channel {board[1]} of the board on {port} is "
                                                        f"already used by {channels[board]}"))
            channels.setdefault(board, f"module {name} ({item.where('channel')})")
        elif port is not None and port in ports:
            problems.append(item.problem("port", f"port {port} is already used by {ports[port]}"))
        elif port is not None:
            if board is not None:
                channels[board] = f"module {name} ({item.where('channel')})"
            ports[port] = f"{_BOARD if board is not None else ''}module {name} ({item.where('port')})"
            if exists is not None and "://" not in port and not exists(port):
                problems.append(item.problem("port", f"port {port} does not exist; "
                                                     "is the instrument plugged in?"))
    for item in loaded:
        source = item.fact("temperature_source")
        target = by_id.get(source) if source is not None else None
        if source is not None and target is None:
            known = ", ".join(sorted(by_id)) or "none"
            problems.append(item.problem("temperature_source",
                                         f"no module {source!r} in this unit (modules: {known})"))
        elif target is not None and target.dcd is not None \
                and not any(r.name == "temp" for r in target.dcd.readings):
            problems.append(item.problem("temperature_source",
                                         f"module {source!r} reports no temperature (no 'temp' reading); "
                                         "name an ezo rtd module"))
    return problems
