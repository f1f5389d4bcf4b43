"""The fleet inventory (`fleet.yaml`): every unit of a lab and the hub's settings, checked all at once.

Nothing is provisioned from an inventory with a problem: `load_inventory`
reads the whole file (and every DCD file it names), and raises
InventoryInvalid listing every problem with file:line and field, so a
technician fixes the file in one pass. docs/provisioning.md describes the keys.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lecis.dcd_loader import check_dcd, read_dcd, read_pin
from lecis.errors import ConfigError, ConfigProblem
from lecis.topics import TOPIC_ROOT, UNIT_ID, reserved_unit_id
from lecis.yaml_limits import field_name
from lecis.yaml_loader import MISSING, Fields, YamlDoc, YPath, load_yaml

WHAT = "a fleet inventory: key: value lines such as fleet:, hub: and units:"
TOP_KEYS = ("fleet", "hub", "wifi", "units")
FLEET_KEYS = ("topic_root", "login", "ssh_authorized_keys", "labedge", "config_dir", "data_dir", "log_dir")
HUB_KEYS = ("id", "broker_host", "port", "tls_port", "tls", "bucket", "data_dir", "script",
            "mosquitto_user")
TLS_KEYS = ("ca", "cert", "key")
WIFI_KEYS = ("ssid", "password", "country")
UNIT_KEYS = ("id", "site", "wifi", "modules", "buttons", "status_led")
BUTTON_KEYS = ("start_pin", "stop_pin")
# Accounts of the hub's own services; `_` never appears in a unit id, so they cannot collide.
HUB_ACCOUNT = "labedge_hub"
MONITOR_ACCOUNT = "labedge_monitor"
SERVICE_ACCOUNTS = (HUB_ACCOUNT, MONITOR_ACCOUNT)
SSH_KEY = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
# Paths and names go into supervisor command lines and Mosquitto's config: nothing to quote in either.
PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._,/()#-]{0,63}$")


class InventoryInvalid(ConfigError):
    """A fleet inventory with problems; nothing was written for any unit."""


@dataclass(frozen=True)
class Wifi:
    ssid: str
    password: str | None  # None: an open network
    country: str


@dataclass(frozen=True)
class DcdFile:
    """One module's DCD as it goes onto the unit: `dcd/<module>.yaml` with this text."""

    module: str
    text: str
    pins: tuple[int, ...] = ()
    place: str = ""  # where the inventory names it: units[0].modules[2]
    line: int | None = None


@dataclass(frozen=True)
class UnitEntry:
    id: str
    site: str
    wifi: Wifi
    modules: tuple[DcdFile, ...]
    start_pin: int | None = None
    stop_pin: int | None = None
    status_led: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class Tls:
    """Broker certificate files (absolute paths on the machine that provisions)."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class HubSettings:
    id: str = "hub-1"
    broker_host: str = "hub.local"
    port: int = 1883  # plain MQTT: loopback only when TLS is on, every interface otherwise
    tls_port: int = 8883
    tls: Tls | None = None
    bucket: str | None = None
    data_dir: str = "/var/lib/labedge/hub"
    script: str | None = None
    mosquitto_user: str = "mosquitto"

    @property
    def unit_port(self) -> int:
        """The port units connect to."""
        return self.tls_port if self.tls is not None else self.port


@dataclass(frozen=True)
class FleetSettings:
    topic_root: str = "lab"
    login: str = "labedge"  # the Linux account on every Pi, which runs the unit
    ssh_authorized_keys: tuple[str, ...] = ()
    labedge: str = "/opt/labedge/venv/bin/labedge"
    config_dir: str = "/etc/labedge"
    data_dir: str = "/var/lib/labedge"
    log_dir: str = "/var/log/labedge"


@dataclass(frozen=True)
class Inventory:
    source: str
    fleet: FleetSettings
    hub: HubSettings
    units: tuple[UnitEntry, ...] = field(default_factory=tuple)

    def unit(self, unit_id: str) -> UnitEntry:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        known = ", ".join(u.id for u in self.units)
        raise InventoryInvalid([ConfigProblem(self.source, None, "units",
                                              f"no unit {unit_id!r} in this inventory (units: {known})")])


def load_inventory(path: Path) -> Inventory:
    """Read and check `path`; InventoryInvalid lists every problem of the file and of its DCD files."""
    try:
        doc = load_yaml(path, WHAT)
    except ConfigError as exc:
        raise InventoryInvalid(exc.problems) from None
    f = Fields(doc)
    base = path.parent
    f.mapping((), TOP_KEYS)
    fleet = _fleet(f)
    hub = _hub(f, base)
    networks = _networks(f)
    units = _units(f, doc, base, networks)
    problems = f.problems
    if not problems:
        problems = [p for unit in units for p in _unit_accepted(unit, fleet, hub, doc)]
    if problems:
        # A DCD file that several units name has its problems found once per unit: list each once.
        unique = list({str(p): p for p in problems}.values())
        raise InventoryInvalid(sorted(unique, key=lambda p: (p.file != doc.source, p.file, p.line or 0)))
    return Inventory(doc.source, fleet, hub, tuple(units))


def _fleet(f: Fields) -> FleetSettings:
    p: YPath = ("fleet",)
    f.mapping(p, FLEET_KEYS, required=True, what="a mapping with ssh_authorized_keys and the Pi's paths")
    keys = f.value(p + ("ssh_authorized_keys",))
    found: list[str] = []
    if not isinstance(keys, list) or not keys:
        f.problem(p + ("ssh_authorized_keys",), "expected a list of at least one SSH public key "
                  "(the text of ~/.ssh/id_ed25519.pub: ssh-ed25519 AAAA... name)")
    else:
        for index, key in enumerate(keys):
            if not isinstance(key, str) or not SSH_KEY.match(key.strip()):
                f.problem(p + ("ssh_authorized_keys", index), "expected an SSH public key line such as "
                          "'ssh-ed25519 AAAA... name' (the .pub file, never the private key)")
            elif not key.strip().isprintable():  # an escaped control character or lone surrogate
                f.problem(p + ("ssh_authorized_keys", index), "the key's comment holds a control character "
                          "or a lone surrogate (\\x.., \\u.. escapes): it would break authorized_keys; "
                          "copy the line from the .pub file as it is")
            else:
                found.append(key.strip())
    d = FleetSettings()
    absolute = "an absolute path on the Pi"
    return FleetSettings(
        f.string(p + ("topic_root",), d.topic_root, pattern=TOPIC_ROOT, expected="a topic root, e.g. lab"),
        f.string(p + ("login",), d.login, pattern=LOGIN, expected="a Linux user name, e.g. labedge"),
        tuple(found),
        _absolute(f, p + ("labedge",), d.labedge, "the absolute path of the labedge command on the Pi"),
        _absolute(f, p + ("config_dir",), d.config_dir, absolute),
        _absolute(f, p + ("data_dir",), d.data_dir, absolute),
        _absolute(f, p + ("log_dir",), d.log_dir, absolute))


def _absolute(f: Fields, path: YPath, default: str, expected: str) -> str:
    return f.string(path, default, pattern=PATH, expected=expected + " (letters, digits, . _ + - and /)")


def _hub(f: Fields, base: Path) -> HubSettings:
    p: YPath = ("hub",)
    f.mapping(p, HUB_KEYS, required=True, what="a mapping with id and broker_host")
    d = HubSettings()
    tls = None
    if f.mapping(p + ("tls",), TLS_KEYS, what="a mapping with ca, cert and key (PEM files)") is not None:
        files = []
        for key in TLS_KEYS:
            text = f.string(p + ("tls", key), None, required=True, expected=f"the path of the {key} PEM file")
            file = None if text is None else Path(os.path.abspath(base / Path(text).expanduser()))
            if file is not None and not file.is_file():
                f.problem(p + ("tls", key), f"file {file} does not exist")
                file = None
            files.append(file)
        if all(files):
            tls = Tls(*[file for file in files if file is not None])
    hub_id = f.string(p + ("id",), d.id, required=True, pattern=UNIT_ID,
                      expected="a hub id (lower-case letters, digits and -, e.g. hub-1)")
    port = f.integer(p + ("port",), d.port, minimum=1, maximum=65535)
    tls_port = f.integer(p + ("tls_port",), d.tls_port, minimum=1, maximum=65535)
    if f.value(p + ("tls",)) not in (None, MISSING) and port == tls_port:
        f.problem(p + ("tls_port",), f"tls_port and port are both {port}: with TLS, port is the loopback "
                                     "listener of the hub's own processes and tls_port the units'")
    return HubSettings(
        hub_id,
        f.string(p + ("broker_host",), d.broker_host, required=True,
                 pattern=re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"),
                 expected="the broker's host name or address as units reach it, e.g. hub.lab.example"),
        port,
        tls_port,
        tls,
        f.string(p + ("bucket",), None, nullable=True, pattern=BUCKET,
                 expected="a bucket name (lower-case letters, digits, ., _ and -)"),
        _absolute(f, p + ("data_dir",), d.data_dir, "an absolute path on the hub"),
        f.string(p + ("script",), None, nullable=True,
                 expected="the path of an experiment script on the hub"),
        f.string(p + ("mosquitto_user",), d.mosquitto_user, pattern=LOGIN,
                 expected="the Linux user Mosquitto runs as, e.g. mosquitto"))


def _networks(f: Fields) -> dict[str, Wifi]:
    given = f.mapping(("wifi",), None, required=True,
                      what="a mapping of network name to {ssid, password, country}")
    out: dict[str, Wifi] = {}
    for name in given or {}:
        p: YPath = ("wifi", name)
        if f.mapping(p, WIFI_KEYS, required=True, what="a mapping with ssid, password, country") is None:
            continue
        ssid = f.string(p + ("ssid",), None, required=True, expected="the network's SSID")
        # isprintable first: a lone surrogate (an escaped \ud800) is not printable and cannot be encoded.
        if ssid is not None and (not ssid.isprintable() or len(ssid.encode()) > 32):
            f.problem(p + ("ssid",), "an SSID is at most 32 bytes of printable text")
            ssid = None
        password = f.string(p + ("password",), None, required=True, nullable=True,
                            expected="the WPA passphrase (8 to 63 characters), or null for an open network")
        if password is not None and not (8 <= len(password) <= 63 and password.isascii()
                                         and password.isprintable()):
            f.problem(p + ("password",), f"a WPA passphrase is 8 to 63 printable ASCII characters; this one "
                                         f"has {len(password)} characters")
            password = None
            ssid = None  # no network from a bad passphrase, rather than an open one
        country = f.string(p + ("country",), None, required=True, pattern=COUNTRY,
                           expected="a two-letter country code in capitals (Wi-Fi regulatory domain), "
                                    "e.g. GB")
        if ssid is not None and country is not None:
            out[name] = Wifi(ssid, password, country)
    return out


def _units(f: Fields, doc: YamlDoc, base: Path, networks: dict[str, Wifi]) -> list[UnitEntry]:
    entries = f.value(("units",))
    if not isinstance(entries, list) or not entries:
        f.problem(("units",), "expected a list of units with at least one entry (each with id, site, wifi, "
                  "modules)")
        return []
    units: list[UnitEntry] = []
    seen: dict[str, int | None] = {}
    for index, _ in enumerate(entries):
        p: YPath = ("units", index)
        what = "a unit: a mapping with id, site, wifi, modules"
        if f.mapping(p, UNIT_KEYS, required=True, what=what) is None:
            continue
        unit_id = f.string(p + ("id",), None, required=True, pattern=UNIT_ID,
                           expected="a unit id that is also a valid hostname (lower-case letters, digits "
                                    "and -, starting with a letter or digit, up to 32 characters, e.g. "
                                    "bench-1)")
        if unit_id is not None and reserved_unit_id(unit_id) is not None:
            f.problem(p + ("id",), str(reserved_unit_id(unit_id)))
            unit_id = None
        if unit_id is not None and unit_id.endswith("-"):
            f.problem(p + ("id",), f"{unit_id!r} is not a valid hostname: it may not end with '-'")
            unit_id = None
        if unit_id is not None and unit_id in seen:
            f.problem(p + ("id",), f"duplicate unit id {unit_id!r}: already used at line {seen[unit_id]}")
            unit_id = None
        elif unit_id is not None:
            seen[unit_id] = doc.line_of(p + ("id",))
        site = f.string(p + ("site",), None, required=True, pattern=SITE,
                        expected="where the unit stands: one line of up to 64 letters, digits, spaces and "
                                 "._,/()#-, e.g. room-101")
        wifi_name = f.string(p + ("wifi",), None, required=True, expected="the name of a network under wifi:")
        wifi = networks.get(wifi_name) if wifi_name is not None else None
        if wifi_name is not None and wifi is None and isinstance(f.value(("wifi",)), dict) \
                and wifi_name not in f.value(("wifi",)):
            known = ", ".join(networks) or "none"
            f.problem(p + ("wifi",), f"no network {wifi_name!r} under wifi: (networks: {known})")
        f.mapping(p + ("buttons",), BUTTON_KEYS, what="a mapping with start_pin and stop_pin")
        start = read_pin(f, p + ("buttons", "start_pin"), nullable=True)
        stop = read_pin(f, p + ("buttons", "stop_pin"), nullable=True)
        led = read_pin(f, p + ("status_led",), nullable=True)
        modules, sound = _modules(f, doc, base, p)
        _pins_once(f, p, [("the start button", p + ("buttons", "start_pin"), start),
                          ("the stop button", p + ("buttons", "stop_pin"), stop),
                          ("the status LED", p + ("status_led",), led)], modules)
        if unit_id is not None and site is not None and wifi is not None and sound:
            units.append(UnitEntry(unit_id, site, wifi, tuple(m for m, _ in modules), start, stop, led,
                                   doc.line_of(p)))
    return units


def _modules(f: Fields, doc: YamlDoc, base: Path, unit: YPath) -> tuple[list[tuple[DcdFile, YPath]], bool]:
    """(each sound module's DCD, inline or from a file, with its place; whether all were sound).

    Every DCD problem becomes the inventory's problem; the sound ones still go
    through the pin check, so one pass reports everything.
    """
    p = unit + ("modules",)
    entries = f.value(p)
    if not isinstance(entries, list) or not entries:
        f.problem(p, "expected a list of modules: DCD files (relative to this file) or inline DCDs")
        return [], False
    out: list[tuple[DcdFile, YPath]] = []
    ids: dict[str, str] = {}
    ok = True
    for index, entry in enumerate(entries):
        where = p + (index,)
        if isinstance(entry, str) and entry:
            file = base / Path(entry).expanduser()
            if not file.is_file():
                f.problem(where, f"DCD file {file} does not exist")
                ok = False
                continue
            dcd, _, problems = read_dcd(file)
            f.problems.extend(problems)
            text = file.read_text(encoding="utf-8-sig") if dcd is not None else ""
        elif isinstance(entry, dict):
            sub = _subdoc(doc, where)
            dcd, problems = check_dcd(sub)
            prefix = field_name(where)
            f.problems.extend(ConfigProblem(q.file, q.line, f"{prefix}.{q.field}" if q.field else prefix,
                                            q.message) for q in problems)
            text = _dcd_text(entry, doc.source, doc.line_of(where))
        else:
            f.problem(where, "expected the path of a DCD file or an inline DCD (a mapping with module:, "
                             "driver:, ...)")
            ok = False
            continue
        if dcd is None:
            ok = False
            continue
        here = f"{field_name(where)} (line {doc.line_of(where)})"
        if dcd.module in ids:
            f.problem(where, f"duplicate module id {dcd.module!r}: already used by {ids[dcd.module]}")
            ok = False
            continue
        ids[dcd.module] = here
        pin = dcd.settings.get("pin")
        out.append((DcdFile(dcd.module, text, (pin,) if isinstance(pin, int) else (), field_name(where),
                            doc.line_of(where)), where))
    return out, ok


def _subdoc(doc: YamlDoc, prefix: YPath) -> YamlDoc:
    """The part of `doc` under `prefix` as a document of its own, with the inventory's lines."""
    n = len(prefix)

    def inside(table: dict[Any, Any]) -> dict[Any, Any]:
        return {path[n:]: value for path, value in table.items() if path[:n] == prefix}

    return YamlDoc(doc.source, doc.get(prefix), inside(doc.lines), [],
                   {path[n:] for path in doc.refused if path[:n] == prefix},
                   inside(doc.columns), inside(doc.values))


def _dcd_text(entry: dict[str, Any], source: str, line: int | None) -> str:
    from io import StringIO

    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: the keys keep the inventory's order
    out = StringIO()
    yaml.dump(entry, out)
    return f"# from {Path(source).name}:{line}\n{out.getvalue()}"


def _pins_once(f: Fields, unit: YPath, unit_pins: list[tuple[str, YPath, int | None]],
               modules: list[tuple[DcdFile, YPath]]) -> None:
    """A BCM pin drives or reads one thing per unit."""
    users: dict[int, str] = {}
    for label, path, pin in unit_pins:
        if pin is None:
            continue
        if pin in users:
            f.problem(path, f"pin {pin} is already used by {users[pin]}")
        else:
            users[pin] = f"{label} (line {f.doc.line_of(path)})"
    for module, where in modules:
        for pin in module.pins:
            if pin in users:
                f.problem(where, f"pin {pin} of module {module.module} is already used by {users[pin]}")
            else:
                users[pin] = f"module {module.module} ({field_name(where)}, line {f.doc.line_of(where)})"


def _unit_accepted(unit: UnitEntry, fleet: FleetSettings, hub: HubSettings,
                   doc: YamlDoc) -> list[ConfigProblem]:
    """The unit's generated unit.yaml and DCDs, checked by the unit's own loader (ports not required)."""
    from lecis.config_loader import check_unit_config
    from provisioning.cloud_init import unit_yaml

    with tempfile.TemporaryDirectory(prefix="labedge-check-") as tmp:
        folder = Path(tmp)
        (folder / "dcd").mkdir()
        for module in unit.modules:
            (folder / "dcd" / f"{module.module}.yaml").write_text(module.text)
        (folder / "unit.yaml").write_text(unit_yaml(unit, fleet, hub, "x" * 32))
        try:
            check_unit_config(folder / "unit.yaml", None)
        except ConfigError as exc:
            by_file = {str(folder / "dcd" / f"{m.module}.yaml"): m for m in unit.modules}
            out = []
            for p in exc.problems:
                named = by_file.get(p.file)
                line, place = (named.line, named.place) if named else (unit.line, f"unit {unit.id}")
                out.append(ConfigProblem(doc.source, line, f"{place}.{p.field}" if p.field else place,
                                         f"{p.message} (unit {unit.id} would refuse this)"))
            return out
    return []
