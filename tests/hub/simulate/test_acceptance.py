"""Acceptance: `labedge hub simulate examples/respirometry.yaml --speed 1000 --duration 6h`, run as a user.

Under a minute; from the files it wrote: pH within 6.7-7.3 after the first
15 minutes, temperature within 25 ± 0.5 °C once it first reached 25 °C, every seq of
every instrument, and one oxygen uptake rate logged per aeration cycle,
each within 10 % of the vessel model's rate over the script's slope window.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub.script.loader import load_script
from hub.simulate.clock import SimClock
from sim.vessel import Vessel, VesselParams

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "examples" / "respirometry.yaml"
LABEDGE = Path(sys.executable).with_name("labedge")
RUN = "accept"


def rows(run: Path, pattern: str) -> list[dict[str, str]]:
    """Every row of a chunked CSV (its hourly parts in order)."""
    out: list[dict[str, str]] = []
    for part in sorted(run.glob(pattern)):
        with part.open(newline="", encoding="utf-8") as f:
            out.extend(csv.DictReader(f))
    return out


def lines(run: Path, pattern: str) -> list[dict[str, object]]:
    return [json.loads(line) for part in sorted(run.glob(pattern))
            for line in part.read_text(encoding="utf-8").splitlines()]


def column(table: list[dict[str, str]], prefix: str) -> str:
    return next(name for name in table[0] if name == prefix or name.startswith(prefix + " ["))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("simulate")
    done = subprocess.run(
        [str(LABEDGE), "hub", "simulate", str(SCRIPT), "--speed", "1000", "--duration", "6h",
         "--out", str(out), "--run-id", RUN, "--start", "2026-01-01T00:00:00.000Z"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)  # the acceptance bound: under a minute
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "runs" / RUN, done.stdout


def test_ph_stays_in_band_after_the_first_15_minutes(run: tuple[Path, str]) -> None:
    table = rows(run[0], "units/bench-1/ph1.*.csv")
    ph = column(table, "ph")
    late = [float(r[ph]) for r in table if float(r["elapsed_s"]) >= 900.0]
    assert len(late) > 20000
    print(f"pH after 15 min: {min(late):.3f} .. {max(late):.3f}")
    assert 6.7 <= min(late) and max(late) <= 7.3


def test_temperature_holds_25_c_after_warm_up(run: tuple[Path, str]) -> None:
    table = rows(run[0], "units/bench-1/temp1.*.csv")
    temp = column(table, "temp")
    series = [(float(r["elapsed_s"]), float(r[temp])) for r in table]
    warmed = next(t for t, v in series if v >= 25.0)  # warm once the setpoint is first reached
    after = [v for t, v in series if t >= warmed]
    print(f"temperature: warm at {warmed / 60:.1f} min, then {min(after):.3f} .. {max(after):.3f} °C")
    assert warmed < 30 * 60
    assert 24.5 <= min(after) and max(after) <= 25.5


def test_every_seq_of_every_instrument_is_in_the_files(run: tuple[Path, str]) -> None:
    for module, period in (("ph1", 1), ("temp1", 1), ("do1", 2)):
        seqs = [int(r["seq"]) for r in rows(run[0], f"units/bench-1/{module}.*.csv")]
        assert seqs == list(range(1, 6 * 3600 // period + 1)), module
    meta = json.loads((run[0] / "run.json").read_text())
    assert meta["readings_lost"] == {"bench-1/do1": 0, "bench-1/ph1": 0, "bench-1/temp1": 0}
    assert meta["started_at"] == "2026-01-01T00:00:00.000Z" and meta["ended_at"].startswith("2026-01-01T06:0")


def test_one_uptake_rate_per_aeration_cycle_within_10_percent_of_the_model(run: tuple[Path, str]) -> None:
    script = load_script(SCRIPT)
    window = next(s.window_s for s in script.signals if s.name == "our")
    answered = [c for c in lines(run[0], "commands.*.jsonl")
                if c["module"] == "aeration" and isinstance(c["outcome"], dict)
                and c["outcome"]["status"] == "done"]
    switches = [(float(c["elapsed_s"]), c["cmd"]) for c in answered]  # type: ignore[arg-type]
    offs = [t for t, cmd in switches if cmd == "off"]
    ons = [t for t, cmd in switches if cmd == "on"]
    cycles = [(off, next(on for on in ons if on >= off)) for off in offs if any(on >= off for on in ons)]
    reports = [e for e in lines(run[0], "events.*.jsonl")
               if e["code"] == "log" and re.match(r"cycle \d+: OUR", str(e["message"]))]
    assert len(cycles) >= 30
    assert len(reports) == len(cycles)  # one rate per cycle, no more, no less
    model = Vessel(SimClock(), VesselParams())
    errors = []
    for (off, on), report in zip(cycles, reports, strict=True):
        at = float(report["elapsed_s"])  # type: ignore[arg-type]
        assert off < at <= on + 1.0
        measured = float(re.findall(r"OUR (-?[\d.]+)", str(report["message"]))[0])
        expected = model.mean_our(max(off, at - window), at)
        errors.append((measured - expected) / expected)
    worst = max(abs(e) for e in errors)
    print(f"OUR in {len(errors)} cycles: mean error {sum(errors) / len(errors):+.2%}, worst {worst:.2%}")
    assert worst < 0.10
    # The derived signal is recorded like a reading: its rows back the logged values.
    assert rows(run[0], "derived/our.*.csv")


def test_plot_and_summary_are_written_and_printed(run: tuple[Path, str]) -> None:
    run_dir, stdout = run
    assert (run_dir / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "plot.png").stat().st_size > 30_000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_state"] == "finished" and summary["worst_our_error"] < 0.10
    assert "pH after the first 15 min" in stdout and "aeration cycles, vs the model" in stdout
    assert re.search(r"6h00m00s simulated in \d+\.\d s", stdout)
