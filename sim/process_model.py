"""The water the simulated probes sit in: slowly drifting pH, temperature and oxygen.

Each quantity is an Ornstein-Uhlenbeck process (a random walk pulled back
towards a set point), advanced by the time elapsed on the injected clock, so
an accelerated clock drifts the water faster. Later work moves the set points
(heaters, aeration) or shifts the state at once (a pump dosing acid).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

from lecis.clock import Clock
from lecis.errors import SettingInvalid

PROBES = ("ph", "do", "rtd")

# Water vapour and the Weiss salinity term are folded into these simple fits;
# a few tenths of a mg/L of error does not matter to a simulator.
STANDARD_PRESSURE_KPA = 101.325


class ValueSource(Protocol):
    """What an EZO circuit reads its probe values from."""

    def sample(self, probe: str) -> dict[str, float]:
        """Current values for `probe` ("ph", "do" or "rtd")."""


def do_saturation_mg_l(temp_c: float, salinity_ppt: float = 0.0,
                       pressure_kpa: float = STANDARD_PRESSURE_KPA) -> float:
    """Oxygen a litre of water holds at equilibrium with air, in mg/L."""
    t = min(max(temp_c, 0.0), 50.0)
    fresh = 14.652 - 0.41022 * t + 0.0079910 * t**2 - 0.000077774 * t**3
    tk = t + 273.15
    salt = math.exp(-max(salinity_ppt, 0.0) * (1.7674e-2 - 10.754 / tk + 2140.7 / tk**2))
    return fresh * salt * max(pressure_kpa, 0.0) / STANDARD_PRESSURE_KPA


@dataclass
class Drift:
    """One mean-reverting quantity: value, set point, time constant, spread, bounds."""

    value: float
    setpoint: float
    tau_s: float
    spread: float
    low: float
    high: float

    def advance(self, dt: float, rng: random.Random) -> None:
        # Exact discretisation, so a jump of hours (accelerated clock) is as right as a step of a second.
        decay = math.exp(-dt / self.tau_s)
        noise = self.spread * math.sqrt(max(0.0, 1.0 - decay * decay)) * rng.gauss(0.0, 1.0)
        self.value = self.setpoint + (self.value - self.setpoint) * decay + noise
        self.value = min(max(self.value, self.low), self.high)


class WaterProcess:
    """A tank of water near pH 7, 20 °C and 93 % oxygen saturation.

    `sample(probe)` gives what an ideal probe would read now:
    "ph" -> {"ph"}, "rtd" -> {"temp_c"}, "do" -> {"mg_l", "percent", "temp_c"}.
    """

    def __init__(self, clock: Clock, seed: int = 0, ph: float = 7.0, temp_c: float = 20.0,
                 do_fraction: float = 0.93) -> None:
        self.clock = clock
        self._rng = random.Random(seed)
        self.ph = Drift(ph, ph, tau_s=600.0, spread=0.05, low=0.0, high=14.0)
        self.temp = Drift(temp_c, temp_c, tau_s=1800.0, spread=0.3, low=-5.0, high=80.0)
        # Oxygen drifts as a fraction of saturation, so warming water loses mg/L as real water does.
        self.do_fraction = Drift(do_fraction, do_fraction, tau_s=900.0, spread=0.02, low=0.0, high=3.0)
        self._last = clock.monotonic()

    def advance(self) -> None:
        """Bring the state up to the clock's present."""
        now = self.clock.monotonic()
        dt = now - self._last
        if dt <= 0:
            return
        self._last = now
        for drift in (self.ph, self.temp, self.do_fraction):
            drift.advance(dt, self._rng)

    def shift(self, ph: float = 0.0, temp_c: float = 0.0, do_fraction: float = 0.0) -> None:
        """Change the water at once (a dose of acid, a splash of hot water); it then drifts back."""
        self.advance()
        for drift, delta in ((self.ph, ph), (self.temp, temp_c), (self.do_fraction, do_fraction)):
            drift.value = min(max(drift.value + delta, drift.low), drift.high)

    def sample(self, probe: str) -> dict[str, float]:
        if probe not in PROBES:
            raise SettingInvalid(f"unknown probe {probe!r}; expected one of {', '.join(PROBES)}")
        self.advance()
        # A little sensor noise on top of the water's own drift, as a real probe shows.
        temp_c = self.temp.value + self._rng.gauss(0.0, 0.004)
        if probe == "ph":
            return {"ph": min(max(self.ph.value + self._rng.gauss(0.0, 0.002), 0.0), 14.0)}
        if probe == "rtd":
            return {"temp_c": temp_c}
        fraction = max(self.do_fraction.value + self._rng.gauss(0.0, 0.0008), 0.0)
        return {"mg_l": fraction * do_saturation_mg_l(self.temp.value), "percent": fraction * 100.0,
                "temp_c": temp_c}
