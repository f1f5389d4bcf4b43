"""Serial instrument drivers: `ezo` (Atlas Scientific EZO circuits) and `line` (one text line per reading)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from lecis.dcd import CommandSpec, ParamSpec, ReadingSpec
from lecis.driver_specs.spec import DriverSpec, Settings, SettingSpec
from lecis.topics import MODULE_ID
from lecis.yaml_loader import MISSING, Fields

BAUDRATES = (300, 1200, 2400, 9600, 19200, 38400, 57600, 115200)
EZO_PROBES = ("ph", "do", "rtd")
DO_OUTPUTS = ("mg", "%")

SERIAL_SETTINGS = (
    SettingSpec("port", "string", "serial port path (e.g. /dev/ttyUSB0 or a /dev/serial/by-id/ link)",
                required=True, expected="a serial port path (e.g. /dev/ttyUSB0)"),
    SettingSpec("baudrate", "integer", "line speed", default=9600, choices=BAUDRATES),
    SettingSpec("period_s", "number", "seconds between readings", default=1.0, above=0, maximum=3600),
    SettingSpec("timeout_s", "number", "seconds to wait for an answer", default=3.0, above=0),
)


@dataclass(frozen=True)
class SerialSettings:
    port: str
    baudrate: int
    period_s: float
    timeout_s: float


@dataclass(frozen=True)
class EzoSettings(SerialSettings):
    probe: str
    temperature_source: str | None
    do_outputs: tuple[str, ...]


@dataclass(frozen=True)
class LineSettings(SerialSettings):
    query: str | None
    write_terminator: str
    read_terminator: str
    encoding: str
    pattern: str


def _number(name: str, lo: float | None, hi: float | None, unit: str | None = None,
            default: float | None = None) -> ParamSpec:
    return ParamSpec(name, "number", default is None, lo, hi, default=default, unit=unit)


def _cal_point(which: str, default: float) -> CommandSpec:
    point = _number("point", 0, 14, "pH", default)
    return CommandSpec(f"cal_{which}", (point,), f"Cal,{which},{{point:.2f}}", None,
                       f"calibrate the {which} point in a buffer of pH `point`")


EZO_COMMON = (
    CommandSpec("info", (), "i", r"^\?i,", "device type and firmware version"),
    CommandSpec("led_on", (), "L,1", None, "indicator LED on"),
    CommandSpec("led_off", (), "L,0", None, "indicator LED off"),
    CommandSpec("device_status", (), "Status", r"^\?Status,", "reason of last restart and supply voltage"),
    CommandSpec("cal_query", (), "Cal,?", r"^\?Cal,\d", "number of calibration points stored"),
    CommandSpec("cal_clear", (), "Cal,clear", None, "forget the calibration"),
)
EZO_COMMANDS = {
    "ph": (_cal_point("mid", 7.0), _cal_point("low", 4.0), _cal_point("high", 10.0),
           CommandSpec("slope", (), "Slope,?", r"^\?Slope,", "acid and base slope (%) and zero offset (mV)")),
    "do": (CommandSpec("cal_atm", (), "Cal", None, "calibrate in air (atmospheric oxygen)"),
           CommandSpec("cal_zero", (), "Cal,0", None, "calibrate in zero-oxygen solution"),
           CommandSpec("salinity", (_number("us", 0, 100000, "uS/cm"),), "S,{us:g}", None,
                       "salinity compensation, conductivity in uS/cm"),
           CommandSpec("pressure", (_number("kpa", 10, 500, "kPa"),), "P,{kpa:g}", None,
                       "atmospheric pressure compensation in kPa")),
    "rtd": (CommandSpec("cal", (_number("temp", -126, 1254, "°C"),), "Cal,{temp:g}", None,
                        "calibrate to the temperature `temp` of a reference"),),
}
EZO_READINGS = {
    "ph": (ReadingSpec("ph", "pH", 0.001, 14.0),),
    "do": (ReadingSpec("do_mg", "mg/L", 0.0, 100.0), ReadingSpec("do_sat", "%", 0.0, 400.0)),
    "rtd": (ReadingSpec("temp", "°C", -126.0, 1254.0),),
}
_DO_READING = {"do_mg": "mg", "do_sat": "%"}


def _ezo_commands(settings: Settings) -> tuple[CommandSpec, ...]:
    return EZO_COMMON + EZO_COMMANDS.get(settings["probe"], ())


def _ezo_readings(settings: Settings) -> tuple[ReadingSpec, ...]:
    if settings["probe"] is None:
        return ()
    return tuple(r for r in EZO_READINGS[settings["probe"]]
                 if r.name not in _DO_READING or _DO_READING[r.name] in settings["do_outputs"])


def _ezo_check(f: Fields, settings: Settings) -> None:
    probe = settings["probe"]
    if settings["temperature_source"] is not None and probe == "rtd":
        f.problem(("temperature_source",), "only pH and DO circuits take temperature compensation")
    # The default is tolerated: a loaded DCD's settings carry it whatever the probe.
    if f.value(("do_outputs",)) not in (MISSING, list(DO_OUTPUTS)) and probe not in ("do", None):
        f.problem(("do_outputs",), "only the DO circuit has do_outputs; remove this key")
        settings["do_outputs"] = list(DO_OUTPUTS)


def _line_check(f: Fields, settings: Settings) -> None:
    query = settings["query"] or ""
    if "\r" in query or "\n" in query:
        f.problem(("query",), "must be one line; write_terminator is added when it is sent")
    try:
        codecs.lookup(settings["encoding"])
    except LookupError:
        f.problem(("encoding",),
                  f"unknown text encoding {settings['encoding']!r}; use e.g. ascii, latin-1 or utf-8")


EZO = DriverSpec(
    "ezo", "instrument", "an Atlas Scientific EZO pH, dissolved oxygen or RTD circuit in UART mode",
    "edge.drivers.ezo:EzoDriver",
    (SettingSpec("probe", "string", "which circuit: ph, do or rtd", required=True, choices=EZO_PROBES),
     *SERIAL_SETTINGS,
     SettingSpec("temperature_source", "string", "module id of this unit's temperature instrument, whose "
                 "`temp` compensates the readings", nullable=True, pattern=MODULE_ID,
                 expected="the module id of a temperature instrument of this unit"),
     SettingSpec("do_outputs", "list", "DO circuit only: which values it reports, mg/L and/or % saturation",
                 default=DO_OUTPUTS, items=DO_OUTPUTS)),
    EzoSettings, _ezo_commands, _ezo_readings, extensible=True, check=_ezo_check, on_controller_loss="hold",
)
LINE = DriverSpec(
    "line", "instrument", "an instrument that answers (or streams) one text line per reading; the DCD's "
    "pattern names the readings", "edge.drivers.line:LineDriver",
    (*SERIAL_SETTINGS,
     SettingSpec("query", "string", "text sent every period_s; null when the instrument streams lines",
                 nullable=True),
     SettingSpec("write_terminator", "string", "added after the query and every command", default="\r\n",
                 allow_empty=True),
     SettingSpec("read_terminator", "string", "ends each line the instrument sends", default="\n"),
     SettingSpec("encoding", "string", "text encoding of the line", default="ascii"),
     SettingSpec("pattern", "string", "regular expression with a named group per reading", required=True,
                 expected="a regular expression with a named group per reading "
                          "(e.g. 'T=(?P<turbidity>[0-9.]+)')")),
    LineSettings, lambda settings: (), None, extensible=True, check=_line_check, on_controller_loss="hold",
)
