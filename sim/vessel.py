"""A respirometry vessel of activated sludge: dissolved oxygen, pH and temperature that react to outputs.

The vessel is a `ValueSource` (like `sim.process_model.WaterProcess`), so the
EZO simulators read it, and it takes the unit's outputs through
`set_output(role, on, speed)` and `dose(ml)`. Roles: `aeration` (air pump:
re-aeration k_La·(DO_sat(T) - DO)), `base` (NaOH pump: raises pH through the
buffer capacity), `heater` (heating mat: watts into the water, first-order
losses to the room).

State advances on the injected clock in sub-steps of at most `max_step_s`,
each solved exactly for inputs held constant over it (exponential
integrator), so a jump of hours on an accelerated clock lands where a
second-by-second run does. The sludge's oxygen uptake rate `our(t)` varies
slowly over hours (a daily sinusoid); it is the figure a respirometer
should measure from the DO decline while aeration is off. Only the probes
are noisy: the process itself is deterministic given the outputs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from lecis.clock import Clock
from lecis.errors import SettingInvalid
from sim.process_model import PROBES, do_saturation_mg_l

Role = Literal["aeration", "base", "heater"]
ROLES: tuple[Role, ...] = ("aeration", "base", "heater")

WATER_J_PER_L_K = 4186.0  # heat capacity of a litre of water (sludge is mostly water)


@dataclass(frozen=True)
class VesselParams:
    """The vessel's constants; defaults are a 4 L bench respirometer at 20 °C room temperature."""

    volume_l: float = 4.0
    # Oxygen. k_La while the aeration pump runs at full speed; DO_sat(T) from the water temperature.
    kla_per_h: float = 18.0
    kla_surface_per_h: float = 0.0  # through the surface while aeration is off (stirred, covered: ~0)
    our_mean_mg_l_h: float = 35.0
    our_amplitude_mg_l_h: float = 8.0
    our_period_h: float = 24.0
    our_phase_h: float = 0.0  # the sinusoid starts rising at t = phase
    k_o_mg_l: float = 0.0  # Monod half-saturation for oxygen; 0: uptake zero-order down to DO = 0
    do_probe_tau_s: float = 8.0  # membrane probe response (first order); 0: instant
    # pH. Acid from nitrification (and respired CO2) consumes alkalinity in step with the OUR.
    buffer_mmol_l_ph: float = 1.5
    acid_mmol_l_h: float = 0.3  # at the mean OUR
    base_mol_l: float = 0.1  # NaOH in the dosing pump's bottle
    base_ml_per_s: float = 0.85  # the pump's flow at full speed (the DCD's ml_per_s)
    # Temperature.
    heater_w: float = 200.0
    loss_w_per_k: float = 6.0  # to the room, through the walls and the lid
    aeration_cooling_w: float = 3.0  # evaporation into the air bubbles while aeration runs
    room_c: float = 20.0
    # Initial state.
    do_mg_l: float = 2.0
    ph: float = 7.05
    temp_c: float = 20.0
    # Probe noise (one standard deviation).
    ph_noise: float = 0.004
    do_noise_mg_l: float = 0.02
    temp_noise_c: float = 0.01
    max_step_s: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("volume_l", "buffer_mmol_l_ph", "base_mol_l", "base_ml_per_s", "loss_w_per_k",
                    "our_period_h", "max_step_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise SettingInvalid(f"vessel {name} must be above 0, got {getattr(self, name)!r}")
        for name in ("kla_per_h", "kla_surface_per_h", "our_mean_mg_l_h", "k_o_mg_l", "do_probe_tau_s",
                     "heater_w", "acid_mmol_l_h", "ph_noise", "do_noise_mg_l", "temp_noise_c", "do_mg_l"):
            if getattr(self, name) < 0:
                raise SettingInvalid(f"vessel {name} must be 0 or more, got {getattr(self, name)!r}")
        if self.our_amplitude_mg_l_h > self.our_mean_mg_l_h:
            raise SettingInvalid("vessel our_amplitude_mg_l_h must not exceed our_mean_mg_l_h "
                                 "(the uptake rate would go below 0)")

    @property
    def heat_capacity_j_k(self) -> float:
        return WATER_J_PER_L_K * self.volume_l


@dataclass
class Output:
    """One role's output as the vessel sees it: on, speed (0..1), flow for the base pump."""

    on: bool = False
    speed: float = 1.0
    ml_per_s: float | None = None

    @property
    def level(self) -> float:
        return self.speed if self.on else 0.0


@dataclass
class VesselState:
    """What the vessel holds at `t` (seconds since it was filled)."""

    t: float
    do_mg_l: float
    do_probe_mg_l: float  # what the DO membrane senses (lags the water)
    ph: float
    temp_c: float
    base_ml: float = 0.0  # base added since filling
    heat_j: float = 0.0  # heater energy since filling
    outputs: dict[str, Output] = field(default_factory=lambda: {role: Output() for role in ROLES})


class Vessel:
    """An activated-sludge respirometer. `sample(probe)` reads it; outputs act on it.

    "ph" -> {"ph"}, "rtd" -> {"temp_c"}, "do" -> {"mg_l", "percent", "temp_c"}.
    """

    def __init__(self, clock: Clock, params: VesselParams | None = None) -> None:
        self.clock = clock
        self.params = p = params or VesselParams()
        self._rng = random.Random(p.seed)
        self._t0 = clock.monotonic()
        self.state = VesselState(0.0, p.do_mg_l, p.do_mg_l, p.ph, p.temp_c)

    # ---- the model ------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of clock time since the vessel was filled."""
        return self.clock.monotonic() - self._t0

    def our(self, t: float | None = None) -> float:
        """The sludge's oxygen uptake rate in mg/L/h at `t` s (now when None), the figure to measure."""
        p = self.params
        t = self.elapsed() if t is None else t
        phase = 2.0 * math.pi * (t / 3600.0 - p.our_phase_h) / p.our_period_h
        return p.our_mean_mg_l_h + p.our_amplitude_mg_l_h * math.sin(phase)

    def mean_our(self, start: float, end: float) -> float:
        """The model OUR averaged over [start, end] s (exact integral of the sinusoid)."""
        if end <= start:
            return self.our(start)
        p = self.params
        w = 2.0 * math.pi / (p.our_period_h * 3600.0)
        shift = 2.0 * math.pi * p.our_phase_h / p.our_period_h
        integral = (math.cos(w * start - shift) - math.cos(w * end - shift)) / w
        return p.our_mean_mg_l_h + p.our_amplitude_mg_l_h * integral / (end - start)

    def do_saturation(self) -> float:
        return do_saturation_mg_l(self.state.temp_c)

    def kla_per_h(self) -> float:
        """k_La now: the aeration's at its speed, else the surface's."""
        p = self.params
        level = self.state.outputs["aeration"].level
        return p.kla_surface_per_h + (p.kla_per_h - p.kla_surface_per_h) * level

    def heater_w(self) -> float:
        return self.params.heater_w * self.state.outputs["heater"].level

    def advance(self) -> None:
        """Bring the state up to the clock's present."""
        self.advance_to(self.elapsed())

    def advance_to(self, t: float) -> None:
        s, step = self.state, self.params.max_step_s
        while s.t < t:
            h = min(step, t - s.t)
            self._step(h)
            s.t = t if t - s.t <= h * (1 + 1e-12) else s.t + h

    def _step(self, h: float) -> None:
        p, s = self.params, self.state
        # Temperature: C dT/dt = P_heater - P_evaporation - UA (T - T_room), exact for constant inputs.
        power = self.heater_w() - p.aeration_cooling_w * s.outputs["aeration"].level
        t_inf = p.room_c + power / p.loss_w_per_k
        s.temp_c = t_inf + (s.temp_c - t_inf) * math.exp(-h * p.loss_w_per_k / p.heat_capacity_j_k)
        s.heat_j += self.heater_w() * h
        # Oxygen: dC/dt = k_La (C_sat - C) - OUR (· C/(K_O + C)), OUR at mid-step.
        kla = self.kla_per_h() / 3600.0
        uptake = self.our(s.t + h / 2) / 3600.0
        if p.k_o_mg_l > 0:
            uptake *= s.do_mg_l / (p.k_o_mg_l + s.do_mg_l) if s.do_mg_l > 0 else 0.0
        sat = do_saturation_mg_l(s.temp_c)
        if kla > 0:
            c_inf = sat - uptake / kla
            s.do_mg_l = c_inf + (s.do_mg_l - c_inf) * math.exp(-kla * h)
        else:
            s.do_mg_l -= uptake * h
        s.do_mg_l = max(s.do_mg_l, 0.0)
        if p.do_probe_tau_s > 0:
            s.do_probe_mg_l = s.do_mg_l + (s.do_probe_mg_l - s.do_mg_l) * math.exp(-h / p.do_probe_tau_s)
        else:
            s.do_probe_mg_l = s.do_mg_l
        # pH: acid in step with the OUR, base from the pump while it runs, over the buffer capacity.
        acid = p.acid_mmol_l_h / 3600.0 * uptake * 3600.0 / p.our_mean_mg_l_h if p.our_mean_mg_l_h else 0.0
        base = s.outputs["base"]
        ml = (base.ml_per_s or p.base_ml_per_s) * base.level * h
        s.base_ml += ml
        s.ph += (ml * p.base_mol_l / p.volume_l - acid * h) / p.buffer_mmol_l_ph
        s.ph = min(max(s.ph, 0.0), 14.0)

    # ---- what the outputs do --------------------------------------------------------------------
    def set_output(self, role: str, on: bool, speed: float = 1.0, ml_per_s: float | None = None) -> None:
        """The output of `role` switched (`speed` 0..1; the base pump's flow at full speed `ml_per_s`)."""
        if role not in ROLES:
            raise SettingInvalid(f"unknown vessel role {role!r}; expected one of {', '.join(ROLES)}")
        if not 0.0 <= speed <= 1.0:
            raise SettingInvalid(f"{role} speed must be from 0 to 1, got {speed!r}")
        if ml_per_s is not None and not ml_per_s > 0:
            raise SettingInvalid(f"{role} ml_per_s must be above 0, got {ml_per_s!r}")
        self.advance()
        out = self.state.outputs[role]
        out.on, out.speed = on, speed
        if ml_per_s is not None:
            out.ml_per_s = ml_per_s

    def dose(self, ml: float) -> None:
        """Base added at once (`ml` of the base bottle), mixed at once."""
        if not ml >= 0:
            raise SettingInvalid(f"a dose must be 0 ml or more, got {ml!r}")
        self.advance()
        p, s = self.params, self.state
        s.base_ml += ml
        s.ph = min(s.ph + ml * p.base_mol_l / p.volume_l / p.buffer_mmol_l_ph, 14.0)

    def ph_per_ml(self) -> float:
        """pH rise for one ml of base."""
        p = self.params
        return p.base_mol_l / p.volume_l / p.buffer_mmol_l_ph

    # ---- the probes -----------------------------------------------------------------------------
    def sample(self, probe: str) -> dict[str, float]:
        if probe not in PROBES:
            raise SettingInvalid(f"unknown probe {probe!r}; expected one of {', '.join(PROBES)}")
        self.advance()
        p, s, gauss = self.params, self.state, self._rng.gauss
        temp_c = s.temp_c + gauss(0.0, p.temp_noise_c)
        if probe == "ph":
            return {"ph": min(max(s.ph + gauss(0.0, p.ph_noise), 0.0), 14.0)}
        if probe == "rtd":
            return {"temp_c": temp_c}
        mg_l = max(s.do_probe_mg_l + gauss(0.0, p.do_noise_mg_l), 0.0)
        return {"mg_l": mg_l, "percent": 100.0 * mg_l / do_saturation_mg_l(s.temp_c), "temp_c": temp_c}
