"""The EZO protocol engine on its own: every command, with a hand-driven clock and fixed values."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest

from sim.ezo_protocol import EzoCircuit, EzoOptions
from sim.process_model import WaterProcess, do_saturation_mg_l

OK = (0.0, "*OK")
ER = [(0.0, "*ER")]


class HandClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class Fixed:
    """A value source that reads what the test put in it."""

    def __init__(self) -> None:
        self.values = {"ph": {"ph": 7.012}, "rtd": {"temp_c": 21.5},
                       "do": {"mg_l": 8.65, "percent": 95.1, "temp_c": 20.0}}

    def sample(self, probe: str) -> dict[str, float]:
        return dict(self.values[probe])


def circuit(probe: str, continuous: bool = True, seed: int = 0) -> tuple[EzoCircuit, HandClock, Fixed]:
    clock, source = HandClock(), Fixed()
    return EzoCircuit(probe, source, clock, EzoOptions(continuous=continuous, seed=seed)), clock, source


def answer(c: EzoCircuit, line: str) -> str:
    """The data line of a query, checking the `*OK` after it."""
    response = c.handle(line)
    assert len(response) == 2 and response[1] == OK, f"{line!r} -> {response}"
    return response[0][1]


# ---- readings and their delays -----------------------------------------------------------

@pytest.mark.parametrize(("probe", "delay", "line"), [("ph", 0.9, "7.012"), ("rtd", 0.6, "21.500"),
                                                      ("do", 0.6, f"{0.951 * do_saturation_mg_l(20.0):.2f}")])
def test_read_answers_data_then_ok_after_the_reading_time(probe: str, delay: float, line: str) -> None:
    c, _, _ = circuit(probe)
    assert c.handle("R") == [(delay, line), OK]


def test_readings_are_clamped_to_the_circuit_range() -> None:
    c, _, source = circuit("ph")
    source.values["ph"]["ph"] = 0.0
    assert c.handle("R")[0][1] == "0.001"
    source.values["ph"]["ph"] = 14.7
    assert c.handle("R")[0][1] == "14.000"


def test_commands_are_case_insensitive() -> None:
    c, _, _ = circuit("ph")
    assert c.handle("r") == [(0.9, "7.012"), OK]
    assert c.handle("cAl,MiD,7.00") == [(0.9, "*OK")]
    assert answer(c, "cal,?") == "?Cal,1"
    assert answer(c, "STATUS").startswith("?Status,")
    assert answer(c, "I") == "?i,pH,2.16"
    assert c.handle("c,0") == [OK]
    assert answer(c, "C,?") == "?C,0"


@pytest.mark.parametrize("line", ["", "bogus", "R,1", "C,100", "C,x", "C,-1", "L,2", "L", "Name,has space",
                                  "Name,ABCDEFGHIJKLMNOPQ", "Name,a,b", "Baud,1234", "Baud,fast", "*OK,2",
                                  "Cal,mid,abc", "Cal,mid,15", "Cal,mid", "Cal,top,7", "T,warm", "T,nan",
                                  "Slope", "i,1", "Sleep,1", "Factory,now", "O,mg,1", "S,c", "P,100"])
def test_unknown_commands_and_bad_arguments_get_er(line: str) -> None:
    c, _, _ = circuit("ph")
    assert c.handle(line) == ER


def test_low_and_high_points_need_the_mid_point_first() -> None:
    c, _, _ = circuit("ph")
    assert c.handle("Cal,low,4.00") == ER
    assert c.handle("Cal,high,10.00") == ER
    assert answer(c, "Cal,?") == "?Cal,0"


# ---- common commands -----------------------------------------------------------------------

@pytest.mark.parametrize(("probe", "identity"), [("ph", "?i,pH,2.16"), ("do", "?i,D.O.,4.10"),
                                                 ("rtd", "?i,RTD,2.10")])
def test_i_names_the_device_type_and_firmware(probe: str, identity: str) -> None:
    c, _, _ = circuit(probe)
    assert c.handle("i") == [(0.0, identity), OK]


def test_status_gives_restart_reason_and_supply_voltage() -> None:
    c, _, _ = circuit("ph")
    assert re.fullmatch(r"\?Status,P,[45]\.\d{3}", answer(c, "Status"))


def test_name_is_kept_as_written_and_can_be_cleared() -> None:
    c, _, _ = circuit("rtd")
    assert answer(c, "Name,?") == "?Name,"
    assert c.handle("name,Tank-1_pH") == [OK]
    assert answer(c, "Name,?") == "?Name,Tank-1_pH"
    assert c.handle("Name,ABCDEFGHIJKLMNOP") == [OK]  # 16 characters is the most
    assert c.handle("Name,") == [OK]
    assert answer(c, "Name,?") == "?Name,"


def test_led_switches_and_reports() -> None:
    c, _, _ = circuit("do")
    assert answer(c, "L,?") == "?L,1"
    assert c.handle("L,0") == [OK]
    assert answer(c, "L,?") == "?L,0"
    assert c.handle("Find") == [OK]


def test_baud_is_accepted_and_remembered() -> None:
    c, _, _ = circuit("ph")
    assert c.handle("Baud,38400") == [OK]
    assert answer(c, "Baud,?") == "?Baud,38400"


def test_response_codes_off_leave_only_data() -> None:
    c, _, _ = circuit("ph")
    assert c.handle("*OK,?") == [(0.0, "?*OK,1")]
    assert c.handle("*ok,0") == []
    assert c.handle("R") == [(0.9, "7.012")]
    assert c.handle("bogus") == []
    assert c.handle("Cal,mid,7") == []
    assert c.handle("*OK,?") == [(0.0, "?*OK,0")]
    assert c.handle("Sleep") == []
    assert c.handle("R") == []  # woken without a *WA, and the waking line is lost
    assert c.handle("*OK,1") == [OK]
    assert c.handle("R") == [(0.9, "7.012"), OK]


def test_factory_reset_answers_rs_then_re_and_forgets_settings() -> None:
    c, _, _ = circuit("ph", continuous=False)
    for line in ("Name,tank", "Cal,mid,7", "C,5", "*OK,0", "L,0"):
        c.handle(line)
    assert c.handle("Factory") == [(0.0, "*RS"), (0.5, "*RE")]
    assert answer(c, "Name,?") == "?Name,"
    assert answer(c, "Cal,?") == "?Cal,0"
    assert answer(c, "C,?") == "?C,1"
    assert answer(c, "L,?") == "?L,1"
    assert answer(c, "Status").startswith("?Status,S,")


def test_power_up_says_re_keeps_eeprom_settings_and_forgets_temperature() -> None:
    c, _, _ = circuit("do")
    c.handle("Factory")  # restart reason S, until a power cut makes it P again
    for line in ("Name,tank", "Cal", "T,25.5", "P,90.5", "C,0"):
        c.handle(line)
    assert c.power_up() == [(0.0, "*RE")]
    assert answer(c, "Name,?") == "?Name,tank"
    assert answer(c, "Cal,?") == "?Cal,1"
    assert answer(c, "P,?") == "?P,90.5"
    assert answer(c, "C,?") == "?C,0"
    assert answer(c, "T,?") == "?T,20.0"
    assert answer(c, "Status").startswith("?Status,P,")


# ---- continuous mode and sleep -------------------------------------------------------------

def test_continuous_mode_is_on_at_one_second_by_default() -> None:
    c, clock, _ = circuit("ph")
    assert answer(c, "C,?") == "?C,1"
    assert c.continuous_wait() == pytest.approx(1.0)
    assert c.continuous_tick() is None
    clock.t = 1.0
    assert c.continuous_tick() == "7.012"
    assert c.continuous_tick() is None
    assert c.continuous_wait() == pytest.approx(1.0)


def test_continuous_mode_can_start_off_and_be_set_to_n_seconds() -> None:
    c, clock, _ = circuit("rtd", continuous=False)
    assert answer(c, "C,?") == "?C,0"
    assert c.continuous_wait() is None
    assert c.handle("C,5") == [OK]
    assert answer(c, "C,?") == "?C,5"
    clock.t = 4.9
    assert c.continuous_tick() is None
    clock.t = 5.0
    assert c.continuous_tick() == "21.500"
    assert c.continuous_wait() == pytest.approx(5.0)
    assert c.handle("C,0") == [OK]
    clock.t = 100.0
    assert c.continuous_wait() is None and c.continuous_tick() is None


def test_sleep_stops_readings_and_any_line_wakes_without_being_obeyed() -> None:
    c, clock, _ = circuit("ph")
    assert c.handle("Sleep") == [(0.0, "*SL")]
    assert c.asleep
    clock.t = 10.0
    assert c.continuous_wait() is None and c.continuous_tick() is None
    assert c.handle("Factory") == [(0.0, "*WA")]
    assert not c.asleep
    assert answer(c, "Name,?") == "?Name,"
    assert c.continuous_wait() == pytest.approx(1.0)


# ---- pH ----------------------------------------------------------------------------------------

def test_ph_calibration_counts_points_and_mid_starts_over() -> None:
    c, _, _ = circuit("ph")
    assert answer(c, "Cal,?") == "?Cal,0"
    assert c.handle("Cal,mid,7.00") == [(0.9, "*OK")]
    assert answer(c, "Cal,?") == "?Cal,1"
    assert c.handle("Cal,low,4.00") == [(0.9, "*OK")]
    assert answer(c, "Cal,?") == "?Cal,2"
    assert c.handle("Cal,high,10.00") == [(0.9, "*OK")]
    assert answer(c, "Cal,?") == "?Cal,3"
    c.handle("Cal,mid,6.86")
    assert answer(c, "Cal,?") == "?Cal,1"
    assert c.handle("Cal,clear") == [OK]
    assert answer(c, "Cal,?") == "?Cal,0"


def test_ph_slope_is_ideal_uncalibrated_and_measured_after_calibration() -> None:
    c, _, _ = circuit("ph", seed=4)
    assert answer(c, "Slope,?") == "?Slope,100.0,100.0,0.00"
    for line in ("Cal,mid,7", "Cal,low,4", "Cal,high,10"):
        c.handle(line)
    slope = answer(c, "Slope,?")
    assert re.fullmatch(r"\?Slope,\d+\.\d,\d+\.\d,-?\d\.\d\d", slope)
    assert slope != "?Slope,100.0,100.0,0.00"
    assert answer(circuit("ph", seed=4)[0], "Slope,?") == "?Slope,100.0,100.0,0.00"


def test_ph_temperature_compensation() -> None:
    c, _, _ = circuit("ph")
    assert answer(c, "T,?") == "?T,25.0"
    assert c.handle("T,19.5") == [OK]
    assert answer(c, "t,?") == "?T,19.5"


# ---- dissolved oxygen --------------------------------------------------------------------------

def test_do_outputs_select_mg_percent_or_both() -> None:
    c, _, _ = circuit("do")
    mg = f"{0.951 * do_saturation_mg_l(20.0):.2f}"
    assert answer(c, "O,?") == "?O,mg"
    assert c.handle("O,%,1") == [OK]
    assert answer(c, "O,?") == "?O,mg,%"
    assert c.handle("R") == [(0.6, f"{mg},95.1"), OK]
    assert c.handle("o,MG,0") == [OK]
    assert answer(c, "O,?") == "?O,%"
    assert c.handle("R") == [(0.6, "95.1"), OK]
    assert c.handle("O,%,0") == ER  # the last output stays on
    assert c.handle("O,ppm,1") == ER


def test_do_both_outputs_read_like_the_datasheet() -> None:
    c, _, _ = circuit("do")
    c.handle("O,%,1")
    assert re.fullmatch(r"\d+\.\d\d,\d+\.\d", c.handle("R")[0][1])


def test_do_calibration_counts_atmospheric_and_zero() -> None:
    c, _, _ = circuit("do")
    assert answer(c, "Cal,?") == "?Cal,0"
    assert c.handle("Cal") == [(0.6, "*OK")]
    assert answer(c, "Cal,?") == "?Cal,1"
    assert c.handle("Cal,0") == [(0.6, "*OK")]
    assert answer(c, "Cal,?") == "?Cal,2"
    assert c.handle("Cal,clear") == [OK]
    assert answer(c, "Cal,?") == "?Cal,0"
    assert c.handle("Cal,1") == ER


def test_do_compensation_changes_mg_per_litre_not_saturation() -> None:
    c, _, _ = circuit("do")
    c.handle("O,%,1")
    mg_20 = float(c.handle("R")[0][1].split(",")[0])
    assert answer(c, "T,?") == "?T,20.0"
    assert c.handle("T,30") == [OK]
    mg_30, percent = c.handle("R")[0][1].split(",")
    assert float(mg_30) < mg_20 - 1.0 and percent == "95.1"  # warm water holds less oxygen
    assert answer(c, "S,?") == "?S,0,uS"
    assert c.handle("S,37.5,ppt") == [OK]
    assert answer(c, "S,?") == "?S,37.5,ppt"
    assert float(c.handle("R")[0][1].split(",")[0]) < float(mg_30)  # and salt water less again
    assert c.handle("s,50000") == [OK]
    assert answer(c, "S,?") == "?S,50000,uS"
    assert answer(c, "P,?") == "?P,101.3"
    assert c.handle("P,90.25") == [OK]
    assert answer(c, "P,?") == "?P,90.25"
    assert c.handle("P,-1") == ER
    assert c.handle("S,10,mgl") == ER


# ---- RTD -----------------------------------------------------------------------------------------

def test_rtd_reads_in_the_chosen_scale() -> None:
    c, _, _ = circuit("rtd")
    assert answer(c, "S,?") == "?S,c"
    assert c.handle("S,F") == [OK]
    assert answer(c, "S,?") == "?S,f"
    assert c.handle("R") == [(0.6, "70.700"), OK]
    assert c.handle("s,k") == [OK]
    assert c.handle("R") == [(0.6, "294.650"), OK]
    assert c.handle("S,x") == ER


def test_rtd_without_probe_reads_minus_1023() -> None:
    c, clock, _ = circuit("rtd")
    c.probe_attached = False
    assert c.handle("R") == [(0.6, "-1023.000"), OK]
    c.handle("S,f")
    assert c.handle("R") == [(0.6, "-1023.000"), OK]
    clock.t = 1.0
    assert c.continuous_tick() == "-1023.000"


def test_rtd_single_point_calibration() -> None:
    c, _, _ = circuit("rtd")
    assert answer(c, "Cal,?") == "?Cal,0"
    assert c.handle("Cal,25.0") == [(0.6, "*OK")]
    assert answer(c, "Cal,?") == "?Cal,1"
    assert c.handle("Cal,clear") == [OK]
    assert answer(c, "Cal,?") == "?Cal,0"
    assert c.handle("Cal,hot") == ER
    assert c.handle("T,20") == ER  # no temperature compensation on a thermometer


# ---- the process model behind the readings ---------------------------------------------------

def test_water_drifts_slowly_within_bounds_and_repeats_with_a_seed() -> None:
    clock = HandClock()
    water = WaterProcess(clock, seed=7)
    seen = []
    for _ in range(2000):
        clock.t += 60.0
        seen.append(water.sample("ph")["ph"])
    assert all(0.0 <= v <= 14.0 for v in seen)
    assert 6.5 < min(seen) < max(seen) < 7.5
    assert max(abs(a - b) for a, b in itertools.pairwise(seen)) < 0.1
    again = WaterProcess(HandClock(), seed=7)
    assert again.sample("rtd") == WaterProcess(HandClock(), seed=7).sample("rtd")


def test_oxygen_saturation_follows_temperature() -> None:
    clock = HandClock()
    water = WaterProcess(clock, seed=1)
    do = water.sample("do")
    assert 7.5 < do["mg_l"] < 9.5 and 85.0 < do["percent"] < 100.0
    water.shift(temp_c=10.0)
    warm = water.sample("do")
    assert warm["mg_l"] < do["mg_l"] - 1.0
    assert warm["percent"] == pytest.approx(do["percent"], abs=1.0)
    with pytest.raises(ValueError, match="unknown probe"):
        water.sample("orp")
