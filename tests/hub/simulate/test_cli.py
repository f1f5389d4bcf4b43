"""`labedge hub simulate`: a short run's files, and every bad input refused with a message that names it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labedge.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def copy_examples(tmp: Path) -> Path:
    shutil.copytree(EXAMPLES / "dcd", tmp / "dcd")
    shutil.copy(EXAMPLES / "unit.yaml", tmp / "unit.yaml")
    return tmp


def test_a_short_run_writes_the_run_files_and_prints_its_summary(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["hub", "simulate", str(EXAMPLES / "respirometry.yaml"), "--speed", "0", "--duration", "40m",
                 "--out", str(out), "--run-id", "short", "--start", "2026-03-01T08:00:00.000Z", "--no-plot"])
    printed = capsys.readouterr().out
    assert code == 0
    run = out / "runs" / "short"
    meta = json.loads((run / "run.json").read_text())
    assert meta["started_at"] == "2026-03-01T08:00:00.000Z" and meta["meta"]["simulated"] is True
    assert sorted(p.name.split(".")[0] for p in (run / "units" / "bench-1").glob("*.csv")) >= ["do1", "ph1",
                                                                                              "temp1"]
    assert not (run / "plot.png").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["simulated_s"] == 2400.0 and summary["final_state"] == "stopped"
    assert len(summary["cycles"]) >= 2
    assert "0h40m00s simulated" in printed and "aeration cycles, vs the model" in printed
    assert "not simulated (no vessel probe or role): bench-1/turbidity1" in printed


def test_a_bad_script_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = copy_examples(tmp_path) / "bad.yaml"
    script.write_text("experiment: x\nunits: {bench-1: unit.yaml}\nduration: 1h\ntasks:\n"
                      "  - {name: a, at: 0s, do: [{bench-1/heater: {dose: {ml: 1}}}]}\n"
                      "  - {name: b, when: bench-1/ph1.nope > 1, do: [stop]}\n")
    assert main(["hub", "simulate", str(script), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{script}:5:" in err and f"{script}:6:" in err
    assert "2 problem(s)" in err and "nothing was run" in err
    assert not (tmp_path / "out").exists()


def test_a_script_without_duration_needs_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = copy_examples(tmp_path) / "open.yaml"
    script.write_text("experiment: x\nunits: {bench-1: unit.yaml}\ntasks:\n"
                      "  - {name: a, at: 0s, do: [{bench-1/aeration: on}]}\n")
    assert main(["hub", "simulate", str(script), "--out", str(tmp_path / "out")]) == 2
    assert "sets no duration; give --duration (e.g. 6h)" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--speed", "fast", "'fast' is not a number of simulated seconds per wall second"),
    ("--speed", "-3", "'-3' is not a number of simulated seconds per wall second"),
    ("--duration", "6 hours", "'6 hours' is not a duration such as 30s, 5m, 2h"),
    ("--duration", "0", "'0' is not a duration"),
    ("--roles", "aeration=fan", "'aeration=fan' is not MODULE=ROLE"),
    ("--start", "yesterday", "'yesterday' is not a UTC time"),
])
def test_bad_options_name_the_option(option: str, value: str, says: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["hub", "simulate", str(EXAMPLES / "respirometry.yaml"), option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and says in err
