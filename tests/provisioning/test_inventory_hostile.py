"""Hostile inventories and arguments: each refused with the field named, nothing written, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from labedge.cli import main
from tests.provisioning.fleet_files import KEY, inventory_text


def _refused(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(text)
    out = tmp_path / "out"
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 2
    assert not out.exists()
    return capsys.readouterr().err


@pytest.mark.parametrize("escaped", [r"\ud800", r"\udfff", r"\x1b", r"\0", r"\r", r"\u2028"])
def test_an_ssid_or_key_comment_with_an_escaped_control_or_surrogate_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], escaped: str) -> None:
    good = inventory_text(tmp_path)
    err = _refused(tmp_path, good.replace("ssid: LabNet", f'ssid: "Lab{escaped}Net"'), capsys)
    assert "wifi.lab.ssid: an SSID is at most 32 bytes of printable text" in err
    err = _refused(tmp_path, good.replace(f'["{KEY}"]', f'["{KEY}{escaped}x"]'), capsys)
    assert "fleet.ssh_authorized_keys[0]: the key's comment holds a control character" in err


@pytest.mark.parametrize("option", ["--install-dir", "--mosquitto"])
def test_hub_paths_that_would_inject_into_supervisor_or_mosquitto_files_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(inventory_text(tmp_path))
    out = tmp_path / "out"
    hostiles = ("/etc/x\n[program:evil]\ncommand=/bin/sh", "/etc/%(here)s", "/etc/with space", "relative")
    for hostile in hostiles:
        assert main(["provision", "hub", "--inventory", str(inventory), "--out", str(out),
                     option, hostile]) == 2
        err = capsys.readouterr().err
        assert f"labedge provision: {option} {hostile!r}: expected an absolute path" in err
        assert not (out / "labedge-hub.conf").exists() and not (out / "passwd").exists()


def test_a_broken_dcd_file_named_by_two_units_is_reported_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = inventory_text(tmp_path)  # both units name dcd/ph1.yaml
    (tmp_path / "dcd" / "ph1.yaml").write_text("module: ph1\ndriver: ezo\nprobe: ph\nport: \x7f\n")
    err = _refused(tmp_path, text, capsys)
    assert err.count("character U+007F is not allowed") == 1, err
    assert "labedge provision: 1 problem(s)" in err
