"""The EZO UART dialect as a pure state machine: a command line in, timed response lines out.

`EzoCircuit.handle("R")` returns `[(0.9, "7.012"), (0.0, "*OK")]`: each line
with the seconds to wait before sending it. No I/O and no sleeping here; the
device (`sim.ezo_device`) does the waiting on its clock and the writing.
See docs/simulators.md for where this departs from, or guesses at, a datasheet.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from lecis.clock import Clock
from lecis.errors import LabedgeError, SettingInvalid
from sim.process_model import ValueSource, do_saturation_mg_l

Response = list[tuple[float, str]]
Handler = Callable[[list[str]], Response]

READ_DELAY_S = {"ph": 0.9, "do": 0.6, "rtd": 0.6}
IDENTITY = {"ph": ("pH", "2.16"), "do": ("D.O.", "4.10"), "rtd": ("RTD", "2.10")}
DEFAULT_COMP_T = {"ph": 25.0, "do": 20.0, "rtd": 0.0}
BAUD_RATES = (300, 1200, 2400, 9600, 19200, 38400, 57600, 115200)
RTD_DETACHED = "-1023.000"
NAME_MAX = 16
BOOT_S = 0.5  # from *RS to *RE after Factory


class BadArgument(LabedgeError):
    """A command the circuit understands, with arguments it refuses: answered `*ER`."""


@dataclass
class EzoOptions:
    continuous: bool = True  # real circuits power up reading every second
    seed: int = 0


@dataclass
class Settings:
    """What a circuit keeps; `Factory` replaces it with a fresh one."""

    codes: bool = True
    continuous_s: int = 1
    name: str = ""
    led: bool = True
    baud: int = 9600
    cal_points: set[str] = field(default_factory=set)
    comp_t: float = 0.0
    salinity: float = 0.0
    salinity_unit: str = "uS"
    pressure_kpa: float = 101.3
    out_mg: bool = True
    out_percent: bool = False
    scale: str = "c"


def _plain(value: float) -> str:
    """19.5 -> '19.5', 50000.0 -> '50000': how the circuits echo settings back."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _number(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise BadArgument(text) from exc
    if not math.isfinite(value) or not low <= value <= high:
        raise BadArgument(text)
    return value


def _no_args(args: list[str]) -> None:
    if args:
        raise BadArgument(",".join(args))


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise BadArgument(text)
    return text == "1"


class EzoCircuit:
    """One EZO circuit (`probe` "ph", "do" or "rtd") reading from `source`."""

    def __init__(self, probe: str, source: ValueSource, clock: Clock,
                 options: EzoOptions | None = None) -> None:
        if probe not in READ_DELAY_S:
            raise SettingInvalid(f"unknown probe {probe!r}; expected ph, do or rtd")
        self.probe = probe
        self.source = source
        self.clock = clock
        self.options = options or EzoOptions()
        rng = random.Random(self.options.seed)
        self._voltage = rng.uniform(4.98, 5.06)
        # The slopes a calibration finds, fixed per device so a seed gives the same answers.
        self._slopes = (round(rng.uniform(97.0, 100.0), 1), round(rng.uniform(99.5, 102.0), 1),
                        round(rng.uniform(-3.0, 3.0), 2))
        self.settings = self._fresh_settings(self.options.continuous)
        self.asleep = False
        self.probe_attached = True
        self.restart_reason = "P"
        self.read_delay = READ_DELAY_S[probe]
        self._next_continuous: float | None = None
        self._schedule_continuous()
        self._common: dict[str, Handler] = {
            "r": self._cmd_r, "c": self._cmd_c, "i": self._cmd_i, "status": self._cmd_status,
            "name": self._cmd_name, "l": self._cmd_l, "find": self._cmd_find, "sleep": self._cmd_sleep,
            "factory": self._cmd_factory, "baud": self._cmd_baud, "*ok": self._cmd_codes,
        }
        specific: dict[str, dict[str, Handler]] = {
            "ph": {"cal": self._ph_cal, "slope": self._ph_slope, "t": self._cmd_t},
            "do": {"cal": self._do_cal, "t": self._cmd_t, "s": self._do_s, "p": self._do_p, "o": self._do_o},
            "rtd": {"cal": self._rtd_cal, "s": self._rtd_s},
        }
        self._specific = specific[probe]

    def _fresh_settings(self, continuous: bool) -> Settings:
        return Settings(continuous_s=1 if continuous else 0, comp_t=DEFAULT_COMP_T[self.probe])

    # ---- the device-facing surface -------------------------------------------------

    def handle(self, line: str) -> Response:
        """Answer one command line (without its `\\r`)."""
        if self.asleep:  # the bytes that wake the circuit are lost, not obeyed
            return self.wake()
        name, sep, rest = line.strip().partition(",")
        handler = self._common.get(name.lower()) or self._specific.get(name.lower())
        args = [a.strip() for a in rest.split(",")] if sep else []
        if handler is None:
            return self._filtered([(0.0, "*ER")])
        try:
            return self._filtered(handler(args))
        except BadArgument:
            return self._filtered([(0.0, "*ER")])

    def reading(self) -> str:
        """The data line `R` answers with, from the source's current values."""
        values = self.source.sample(self.probe)
        if self.probe == "ph":
            return f"{min(max(values['ph'], 0.001), 14.0):.3f}"
        if self.probe == "rtd":
            if not self.probe_attached:
                return RTD_DETACHED
            c = min(max(values["temp_c"], -126.0), 1254.0)
            scaled = {"c": c, "k": c + 273.15, "f": c * 9 / 5 + 32}[self.settings.scale]
            return f"{scaled:.3f}"
        # The probe senses saturation; mg/L comes from the compensation values the circuit was given.
        percent = max(values["percent"], 0.0)
        s = self.settings
        ppt = s.salinity if s.salinity_unit == "ppt" else s.salinity * 0.00066  # µS/cm to ppt, roughly
        mg = percent / 100.0 * do_saturation_mg_l(s.comp_t, ppt, s.pressure_kpa)
        parts = ([f"{max(mg, 0.0):.2f}"] if s.out_mg else []) + ([f"{percent:.1f}"] if s.out_percent else [])
        return ",".join(parts)

    def continuous_wait(self) -> float | None:
        """Seconds until the next continuous reading is due; None while off or asleep."""
        if self._next_continuous is None or self.asleep:
            return None
        return max(0.0, self._next_continuous - self.clock.monotonic())

    def continuous_tick(self) -> str | None:
        """The continuous reading if one is due now (then the next is scheduled), else None."""
        wait = self.continuous_wait()
        if wait is None or wait > 0 or self._next_continuous is None:
            return None
        period = self.settings.continuous_s
        self._next_continuous = max(self._next_continuous + period, self.clock.monotonic())
        return self.reading()

    def wake(self) -> Response:
        """Any byte arriving while asleep: `*WA`; continuous readings resume."""
        self.asleep = False
        self._schedule_continuous()
        return self._filtered([(0.0, "*WA")])

    def power_up(self) -> Response:
        """The circuit was powered again (adapter plugged back in): `*RE`.

        Settings kept in EEPROM survive; temperature compensation does not.
        """
        self.asleep = False
        self.restart_reason = "P"
        self.settings.comp_t = DEFAULT_COMP_T[self.probe]
        self._schedule_continuous()
        return self._filtered([(0.0, "*RE")])

    # ---- helpers ---------------------------------------------------------------------

    def _filtered(self, lines: Response) -> Response:
        if self.settings.codes:
            return lines
        kept: Response = []
        carry = 0.0
        for delay, text in lines:  # a dropped code's delay still passes before the next line
            if text.startswith("*"):
                carry += delay
            else:
                kept.append((delay + carry, text))
                carry = 0.0
        return kept

    def _schedule_continuous(self) -> None:
        period = self.settings.continuous_s
        self._next_continuous = self.clock.monotonic() + period if period else None

    @staticmethod
    def _query(args: list[str]) -> bool:
        return args == ["?"]

    def _ok(self, delay: float = 0.0) -> Response:
        return [(delay, "*OK")]

    # ---- common commands -------------------------------------------------------------

    def _cmd_r(self, args: list[str]) -> Response:
        _no_args(args)
        return [(self.read_delay, self.reading()), (0.0, "*OK")]

    def _cmd_c(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?C,{self.settings.continuous_s}"), (0.0, "*OK")]
        if len(args) != 1 or not args[0].isdigit() or not 0 <= int(args[0]) <= 99:
            raise BadArgument(",".join(args))
        self.settings.continuous_s = int(args[0])
        self._schedule_continuous()
        return self._ok()

    def _cmd_i(self, args: list[str]) -> Response:
        _no_args(args)
        kind, version = IDENTITY[self.probe]
        return [(0.0, f"?i,{kind},{version}"), (0.0, "*OK")]

    def _cmd_status(self, args: list[str]) -> Response:
        _no_args(args)
        return [(0.0, f"?Status,{self.restart_reason},{self._voltage:.3f}"), (0.0, "*OK")]

    def _cmd_name(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?Name,{self.settings.name}"), (0.0, "*OK")]
        if len(args) != 1 or len(args[0]) > NAME_MAX or not all(33 <= ord(ch) < 127 for ch in args[0]):
            raise BadArgument(",".join(args))
        self.settings.name = args[0]
        return self._ok()

    def _cmd_l(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?L,{int(self.settings.led)}"), (0.0, "*OK")]
        if len(args) != 1:
            raise BadArgument(",".join(args))
        self.settings.led = _flag(args[0])
        return self._ok()

    def _cmd_find(self, args: list[str]) -> Response:
        _no_args(args)
        return self._ok()

    def _cmd_sleep(self, args: list[str]) -> Response:
        _no_args(args)
        self.asleep = True
        return [(0.0, "*SL")]

    def _cmd_factory(self, args: list[str]) -> Response:
        _no_args(args)
        # A factory reset always restores codes on, so *RS and *RE are both heard.
        self.settings = self._fresh_settings(continuous=True)
        self.restart_reason = "S"
        self._schedule_continuous()
        return [(0.0, "*RS"), (BOOT_S, "*RE")]

    def _cmd_baud(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?Baud,{self.settings.baud}"), (0.0, "*OK")]
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) not in BAUD_RATES:
            raise BadArgument(",".join(args))
        self.settings.baud = int(args[0])  # a pty has no line speed; remembered for `Baud,?`
        return self._ok()

    def _cmd_codes(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?*OK,{int(self.settings.codes)}")]
        if len(args) != 1:
            raise BadArgument(",".join(args))
        self.settings.codes = _flag(args[0])
        return self._ok()

    def _cmd_t(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?T,{self.settings.comp_t:.1f}"), (0.0, "*OK")]
        if len(args) != 1:
            raise BadArgument(",".join(args))
        self.settings.comp_t = _number(args[0], -20.0, 100.0)
        return self._ok()

    # ---- pH ----------------------------------------------------------------------------

    def _ph_cal(self, args: list[str]) -> Response:
        points = self.settings.cal_points
        if self._query(args):
            return [(0.0, f"?Cal,{len(points)}"), (0.0, "*OK")]
        if [a.lower() for a in args] == ["clear"]:
            points.clear()
            return self._ok()
        if len(args) != 2 or args[0].lower() not in ("mid", "low", "high"):
            raise BadArgument(",".join(args))
        point = args[0].lower()
        _number(args[1], 0.0, 14.0)
        if point == "mid":
            points.clear()  # the mid point starts a calibration over
        elif "mid" not in points:
            raise BadArgument("low and high points need the mid point first")
        points.add(point)
        return self._ok(self.read_delay)

    def _ph_slope(self, args: list[str]) -> Response:
        if not self._query(args):
            raise BadArgument(",".join(args))
        points = self.settings.cal_points
        acid = self._slopes[0] if "low" in points else 100.0
        base = self._slopes[1] if "high" in points else 100.0
        offset = self._slopes[2] if "mid" in points else 0.0
        return [(0.0, f"?Slope,{acid:.1f},{base:.1f},{offset:.2f}"), (0.0, "*OK")]

    # ---- dissolved oxygen ------------------------------------------------------------

    def _do_cal(self, args: list[str]) -> Response:
        points = self.settings.cal_points
        if self._query(args):
            return [(0.0, f"?Cal,{len(points)}"), (0.0, "*OK")]
        lowered = [a.lower() for a in args]
        if lowered == ["clear"]:
            points.clear()
            return self._ok()
        if lowered not in ([], ["0"]):
            raise BadArgument(",".join(args))
        points.add("zero" if lowered else "atmospheric")
        return self._ok(self.read_delay)

    def _do_s(self, args: list[str]) -> Response:
        s = self.settings
        if self._query(args):
            return [(0.0, f"?S,{_plain(s.salinity)},{s.salinity_unit}"), (0.0, "*OK")]
        unit = args[1].lower() if len(args) == 2 else "us"
        if len(args) not in (1, 2) or unit not in ("us", "ppt"):
            raise BadArgument(",".join(args))
        s.salinity = _number(args[0], 0.0, 60.0 if unit == "ppt" else 200000.0)
        s.salinity_unit = "ppt" if unit == "ppt" else "uS"
        return self._ok()

    def _do_p(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?P,{_plain(self.settings.pressure_kpa)}"), (0.0, "*OK")]
        if len(args) != 1:
            raise BadArgument(",".join(args))
        self.settings.pressure_kpa = _number(args[0], 10.0, 500.0)
        return self._ok()

    def _do_o(self, args: list[str]) -> Response:
        s = self.settings
        if self._query(args):
            names = (["mg"] if s.out_mg else []) + (["%"] if s.out_percent else [])
            return [(0.0, "?O," + ",".join(names)), (0.0, "*OK")]
        if len(args) != 2 or args[0].lower() not in ("mg", "%"):
            raise BadArgument(",".join(args))
        on = _flag(args[1])
        mg, percent = (on, s.out_percent) if args[0].lower() == "mg" else (s.out_mg, on)
        if not (mg or percent):
            raise BadArgument("at least one output stays on")
        s.out_mg, s.out_percent = mg, percent
        return self._ok()

    # ---- RTD -----------------------------------------------------------------------------

    def _rtd_cal(self, args: list[str]) -> Response:
        points = self.settings.cal_points
        if self._query(args):
            return [(0.0, f"?Cal,{len(points)}"), (0.0, "*OK")]
        if len(args) != 1:
            raise BadArgument(",".join(args))
        if args[0].lower() == "clear":
            points.clear()
            return self._ok()
        _number(args[0], -126.0, 1254.0)
        points.add("single")
        return self._ok(self.read_delay)

    def _rtd_s(self, args: list[str]) -> Response:
        if self._query(args):
            return [(0.0, f"?S,{self.settings.scale}"), (0.0, "*OK")]
        if len(args) != 1 or args[0].lower() not in ("c", "k", "f"):
            raise BadArgument(",".join(args))
        self.settings.scale = args[0].lower()
        return self._ok()
