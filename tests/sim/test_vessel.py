"""The respirometry vessel: re-aeration, uptake, base dosing, heater balance, accelerated time."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest

from hub.simulate.clock import SimClock
from lecis.errors import SettingInvalid
from sim.process_model import do_saturation_mg_l
from sim.vessel import Vessel, VesselParams

QUIET = VesselParams(ph_noise=0.0, do_noise_mg_l=0.0, temp_noise_c=0.0, do_probe_tau_s=0.0)


def make(params: VesselParams = QUIET) -> tuple[SimClock, Vessel]:
    clock = SimClock()
    return clock, Vessel(clock, params)


def slope_per_h(points: list[tuple[float, float]]) -> float:
    xs, ys = [t for t, _ in points], [v for _, v in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    covariance = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return 3600.0 * covariance / sum((x - mx) ** 2 for x in xs)


def test_probes_read_what_the_ezo_simulators_expect() -> None:
    _, vessel = make(VesselParams())
    assert set(vessel.sample("ph")) == {"ph"}
    assert set(vessel.sample("rtd")) == {"temp_c"}
    do = vessel.sample("do")
    assert set(do) == {"mg_l", "percent", "temp_c"}
    assert do["percent"] == pytest.approx(100 * do["mg_l"] / do_saturation_mg_l(20.0), rel=1e-3)
    with pytest.raises(SettingInvalid, match="unknown probe 'orp'"):
        vessel.sample("orp")
    with pytest.raises(SettingInvalid, match="unknown vessel role 'acid'"):
        vessel.set_output("acid", True)


def test_saturation_at_25_c_is_about_8_2_mg_l() -> None:
    assert do_saturation_mg_l(25.0) == pytest.approx(8.2, abs=0.1)


def test_reaeration_reaches_saturation_with_the_kla_time_constant() -> None:
    clock, vessel = make(replace(QUIET, our_mean_mg_l_h=0.0, our_amplitude_mg_l_h=0.0, acid_mmol_l_h=0.0,
                                 aeration_cooling_w=0.0, do_mg_l=1.0))
    vessel.set_output("aeration", True)
    sat = do_saturation_mg_l(20.0)
    clock.set_elapsed(3600.0 / QUIET.kla_per_h)  # one time constant: the deficit falls to 1/e
    assert sat - vessel.sample("do")["mg_l"] == pytest.approx((sat - 1.0) / math.e, rel=1e-6)
    clock.set_elapsed(3600.0)
    assert vessel.sample("do")["mg_l"] == pytest.approx(sat, abs=1e-3)
    assert vessel.sample("do")["percent"] == pytest.approx(100.0, abs=0.02)


def test_aerated_sludge_settles_below_saturation_by_our_over_kla() -> None:
    clock, vessel = make(replace(QUIET, our_amplitude_mg_l_h=0.0, aeration_cooling_w=0.0))
    vessel.set_output("aeration", True)
    clock.set_elapsed(2 * 3600.0)
    expected = do_saturation_mg_l(20.0) - QUIET.our_mean_mg_l_h / QUIET.kla_per_h
    assert vessel.sample("do")["mg_l"] == pytest.approx(expected, abs=1e-3)


def test_uptake_slope_without_aeration_equals_the_model_our() -> None:
    # A real probe: noise and membrane lag. The slope after the lag has passed is still the OUR.
    params = replace(VesselParams(), do_mg_l=6.0, our_phase_h=-3.0)
    clock, vessel = make(params)
    assert vessel.our(0.0) == pytest.approx(params.our_mean_mg_l_h + params.our_amplitude_mg_l_h * math.sin(
        2 * math.pi * 3 / 24))
    points = []
    for t in range(60, 360, 2):
        clock.set_elapsed(float(t))
        points.append((float(t), vessel.sample("do")["mg_l"]))
    measured = -slope_per_h(points)
    assert measured == pytest.approx(vessel.mean_our(60.0, 358.0), rel=0.01)
    assert vessel.our(200.0) != vessel.our(0.0)


def test_our_varies_slowly_over_hours() -> None:
    _, vessel = make(VesselParams())
    rates = [vessel.our(h * 3600.0) for h in range(25)]
    assert max(rates) == pytest.approx(43.0, abs=0.01) and min(rates) == pytest.approx(27.0, abs=0.01)
    assert vessel.mean_our(0.0, 24 * 3600.0) == pytest.approx(35.0, abs=1e-6)
    # Within one 5-minute decline the rate moves well under 1 %.
    assert abs(vessel.our(300.0) - vessel.our(0.0)) / vessel.our(0.0) < 0.01


def test_uptake_stops_at_zero_oxygen() -> None:
    clock, vessel = make(replace(QUIET, do_mg_l=1.0))
    clock.set_elapsed(3600.0)
    assert vessel.sample("do")["mg_l"] == 0.0


def test_base_dose_raises_ph_by_the_buffer_capacity() -> None:
    clock, vessel = make(replace(QUIET, acid_mmol_l_h=0.0))
    before = vessel.sample("ph")["ph"]
    vessel.dose(4.0)
    step = 4.0 * QUIET.base_mol_l / QUIET.volume_l / QUIET.buffer_mmol_l_ph
    assert vessel.sample("ph")["ph"] == pytest.approx(before + step, abs=1e-9)
    assert step == pytest.approx(0.0667, abs=1e-3)
    # The pump running 10 s at 0.85 ml/s adds 8.5 ml: twice that step and a bit.
    vessel.set_output("base", True, ml_per_s=0.85)
    clock.set_elapsed(10.0)
    vessel.set_output("base", False)
    clock.set_elapsed(20.0)
    assert vessel.state.base_ml == pytest.approx(12.5)
    assert vessel.sample("ph")["ph"] == pytest.approx(before + step * 12.5 / 4.0, abs=1e-9)


def test_acid_drift_lowers_ph_without_dosing() -> None:
    clock, vessel = make(replace(QUIET, our_amplitude_mg_l_h=0.0))
    clock.set_elapsed(3600.0)
    drop = QUIET.acid_mmol_l_h / QUIET.buffer_mmol_l_ph
    assert vessel.sample("ph")["ph"] == pytest.approx(QUIET.ph - drop, abs=1e-9)


def test_heater_balances_losses_to_the_room() -> None:
    clock, vessel = make(replace(QUIET, aeration_cooling_w=0.0))
    vessel.set_output("heater", True)
    tau = QUIET.heat_capacity_j_k / QUIET.loss_w_per_k
    final = QUIET.room_c + QUIET.heater_w / QUIET.loss_w_per_k
    clock.set_elapsed(tau)
    assert vessel.sample("rtd")["temp_c"] == pytest.approx(final - (final - QUIET.room_c) / math.e, abs=1e-6)
    # Early on almost all the power warms the water: C dT/dt ≈ P.
    assert vessel.state.heat_j == pytest.approx(QUIET.heater_w * tau)
    clock.set_elapsed(12 * tau)
    assert vessel.sample("rtd")["temp_c"] == pytest.approx(final, abs=1e-3)
    vessel.set_output("heater", False)
    clock.set_elapsed(30 * tau)
    assert vessel.sample("rtd")["temp_c"] == pytest.approx(QUIET.room_c, abs=1e-3)


State = tuple[float, float, float]


def _schedule(vessel: Vessel, clock: SimClock, sample_every: float) -> dict[float, State]:
    """Aeration, heater and base switched at fixed times; the state at every 600 s, sampled as asked."""
    switches = {0.0: ("aeration", True), 900.0: ("heater", True), 1500.0: ("aeration", False),
                1800.0: ("base", True), 1830.0: ("base", False), 2700.0: ("heater", False),
                3000.0: ("aeration", True)}
    marks: dict[float, State] = {}
    t = 0.0
    while t <= 3600.0:
        clock.set_elapsed(t)
        if t in switches:
            role, on = switches[t]
            vessel.set_output(role, on)
        vessel.sample("do")
        if t % 600.0 == 0.0:
            s = vessel.state
            marks[t] = (s.do_mg_l, s.ph, s.temp_c)
        t += sample_every
    return marks


def test_accelerated_clock_gives_the_same_trajectory() -> None:
    # Coarse sampling (an accelerated clock read rarely) and second-by-second land on the same states.
    fine = _schedule(*reversed(make(VesselParams())), sample_every=1.0)  # type: ignore[arg-type]
    coarse = _schedule(*reversed(make(VesselParams())), sample_every=30.0)  # type: ignore[arg-type]
    assert fine.keys() == coarse.keys()
    for t in fine:
        assert fine[t] == pytest.approx(coarse[t], abs=1e-9), t


def test_accelerated_clock_gives_the_same_noise_statistics() -> None:
    def readings(step: float) -> list[float]:
        clock, vessel = make(replace(VesselParams(), our_mean_mg_l_h=0.0, our_amplitude_mg_l_h=0.0,
                                     acid_mmol_l_h=0.0, seed=int(step)))
        out = []
        for i in range(1, 1501):
            clock.set_elapsed(i * step)
            out.append(vessel.sample("ph")["ph"])
        return out

    slow, fast = readings(1.0), readings(120.0)
    assert statistics.fmean(slow) == pytest.approx(statistics.fmean(fast), abs=0.001)
    assert statistics.stdev(slow) == pytest.approx(statistics.stdev(fast), rel=0.1)
    assert statistics.stdev(slow) == pytest.approx(VesselParams().ph_noise, rel=0.1)


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(SettingInvalid, match="volume_l must be above 0"):
        VesselParams(volume_l=0.0)
    with pytest.raises(SettingInvalid, match="our_amplitude_mg_l_h must not exceed"):
        VesselParams(our_mean_mg_l_h=10.0, our_amplitude_mg_l_h=20.0)
    _, vessel = make()
    with pytest.raises(SettingInvalid, match="speed must be from 0 to 1"):
        vessel.set_output("aeration", True, speed=2.0)
    with pytest.raises(SettingInvalid, match="0 ml or more"):
        vessel.dose(-1.0)
