"""`labedge script check`: what a user sees and the exit status, on the example and on broken scripts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labedge.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["script", "check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, str(EXAMPLES / "respirometry.yaml"))
    assert code == 0
    assert "valid: experiment 'respirometry', 1 unit" in out


def test_every_problem_is_printed_with_file_line_and_column(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.yaml"
    script.write_text(
        "experiment: broken\n"
        f"units: {{bench-1: {EXAMPLES / 'unit.yaml'}}}\n"
        "duraton: 6h\n"
        "tasks:\n"
        "  - {name: a, when: bench-1/do1.mg_l > 3, do: [{bench-1/aeration: spin}]}\n")
    code, out, err = check(capsys, str(script))
    assert code == 1
    assert out.splitlines() == [
        f"{script}:3:1: unknown key 'duraton'; did you mean 'duration'?",
        f"{script}:5:21: module bench-1/do1 has no reading 'mg_l'; the readings of bench-1/do1 are: do_mg, "
        "do_sat",
        f"{script}:5:67: bench-1/aeration: aeration has no command 'spin' (device commands: off, on, pulse; "
        "standard: INIT, PAUSE, RESUME, ABORT, ESTOP, CLEAR, RESET, STATUS, LOCAL, REMOTE)",
    ]
    assert "invalid: 3 problems; nothing would be started" in err


def test_an_unusable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: [\n")
    code, out, err = check(capsys, str(bad))
    assert code == 2 and out.startswith(f"{bad}:") and "not valid YAML" in out
    assert "not a usable script" in err
    code, out, _ = check(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2 and "file does not exist" in out
    code, _, err = check(capsys, str(bad), "--units", str(tmp_path / "nope"))
    assert code == 2 and "not a folder" in err


def test_units_dir_checks_against_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    units = tmp_path / "units"
    shutil.copytree(EXAMPLES / "dcd", units / "bench-1")
    (units / "bench-1" / "heater.yaml").unlink()
    code, out, _ = check(capsys, str(EXAMPLES / "respirometry.yaml"), "--units", str(units))
    assert code == 1
    assert "unit bench-1 has no module 'heater'" in out
    assert all(line.startswith(str(EXAMPLES / "respirometry.yaml") + ":") for line in out.splitlines())


def test_script_help_lists_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["script", "check", "--help"])
    assert info.value.code == 0
    assert "--units DIR" in capsys.readouterr().out
