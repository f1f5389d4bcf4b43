"""The unit bundle: cloud-init accepts every user-data; what goes on the card is what the unit needs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from labedge.cli import main
from lecis.config_loader import load_unit_config
from provisioning.credentials import CredentialStore
from tests.provisioning.fleet_files import KEY, write_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.yaml"


def apply_write_files(user_data: Path) -> list[Path]:
    """Do what cloud-init's write_files does with the files (paths as written, mode as given)."""
    config = YAML(typ="safe").load(user_data.read_text())
    written = []
    for entry in config["write_files"]:
        path = Path(entry["path"])
        if not path.is_relative_to(user_data.parents[2]):
            continue  # /etc/supervisor/... on the Pi
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry["content"])
        os.chmod(path, int(entry["permissions"], 8))
        written.append(path)
    return written


def test_cloud_init_accepts_every_generated_user_data(tmp_path: Path) -> None:
    cloud_init = shutil.which("cloud-init")
    if cloud_init is None:
        pytest.skip("cloud-init is not installed; run `make test`, which installs it")
    out = tmp_path / "out"
    assert main(["provision", "fleet", "--inventory", str(EXAMPLE), "--out", str(out)]) == 0
    inventory = write_inventory(tmp_path)
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    checked = 0
    for user_data in sorted(out.glob("*/user-data")):
        done = subprocess.run([cloud_init, "schema", "--config-file", str(user_data)], capture_output=True,
                              text=True)
        assert done.returncode == 0, (user_data, done.stdout, done.stderr)
        assert "Valid cloud-config" in done.stdout
        checked += 1
    assert checked == 4


def test_the_bundle_holds_what_the_unit_needs_in_plain_text(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    out = tmp_path / "out"
    assert main(["provision", "unit", "bench-a", "--inventory", str(inventory), "--out", str(out)]) == 0
    folder = out / "bench-a"
    assert sorted(p.name for p in folder.iterdir()) == ["CHECKLIST.txt", "labedge-unit.conf", "meta-data",
                                                        "network-config", "user-data"]
    text = (folder / "user-data").read_text()
    config = YAML(typ="safe").load(text)
    assert text.startswith("#cloud-config\n")
    assert config["hostname"] == "bench-a" and config["timezone"] == "UTC"
    assert config["users"][0]["ssh_authorized_keys"] == [KEY]
    assert "encoding" not in str(config["write_files"])  # plain text, no base64
    files = {entry["path"]: entry for entry in config["write_files"]}
    unit_yaml = files[f"{tmp_path}/etc/unit.yaml"]
    assert unit_yaml["permissions"] == "0600"
    password = CredentialStore.open(out / "credentials.yaml").units["bench-a"]
    assert f'password: "{password}"' in unit_yaml["content"]
    program = files["/etc/supervisor/conf.d/labedge-unit.conf"]["content"]
    assert program == (folder / "labedge-unit.conf").read_text()
    # The unit's own loader accepts what cloud-init writes, with the ports of the simulators.
    written = apply_write_files(folder / "user-data")
    assert stat.S_IMODE((tmp_path / "etc" / "unit.yaml").stat().st_mode) == 0o600
    assert {p.name for p in written} == {"unit.yaml", "ph1.yaml", "heater.yaml", "aeration.yaml"}
    unit = load_unit_config(tmp_path / "etc" / "unit.yaml", check_ports=False)
    assert unit.broker.username == "bench-a" and unit.broker.password == password
    assert [m.module for m in unit.modules] == ["ph1", "heater", "aeration"]
    network = YAML(typ="safe").load((folder / "network-config").read_text())
    assert network["network"]["wifis"]["wlan0"]["access-points"] == {"LabNet": {"password": "correct horse"}}
    assert stat.S_IMODE((folder / "network-config").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "user-data").stat().st_mode) == 0o600
    checklist = (folder / "CHECKLIST.txt").read_text()
    assert "cloud-init status --long" in checklist and "labedge-unit RUNNING" in checklist


def test_every_provisioning_has_a_new_instance_id(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    ids = set()
    for _ in range(2):
        assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(tmp_path / "o")]) == 0
        for unit in ("bench-a", "bench-b"):
            meta = YAML(typ="safe").load((tmp_path / "o" / unit / "meta-data").read_text())
            assert meta["local-hostname"] == unit
            ids.add(meta["instance-id"])
    assert len(ids) == 4


def test_fleet_keeps_passwords_unless_rotated(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    out = tmp_path / "o"
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    first = CredentialStore.open(out / "credentials.yaml").units
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    assert CredentialStore.open(out / "credentials.yaml").units == first
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out), "--rotate"]) == 0
    rotated = CredentialStore.open(out / "credentials.yaml").units
    assert all(rotated[unit] != first[unit] for unit in first)


def test_a_store_readable_by_others_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(tmp_path)
    out = tmp_path / "o"
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    os.chmod(out / "credentials.yaml", 0o644)
    before = (out / "bench-a" / "user-data").read_text()
    assert main(["provision", "unit", "bench-a", "--inventory", str(inventory), "--out", str(out)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert (out / "bench-a" / "user-data").read_text() == before


def test_a_second_provisioning_on_the_same_store_waits_its_turn(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from edge.data_lock import PidLock

    inventory = write_inventory(tmp_path)
    out = tmp_path / "o"
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    before = CredentialStore.open(out / "credentials.yaml").units
    with PidLock(out / ".credentials.yaml.lock", {"command": "labedge provision"}):
        assert main(["provision", "unit", "bench-a", "--inventory", str(inventory), "--out", str(out)]) == 2
    assert "another labedge provision is using" in capsys.readouterr().err
    assert CredentialStore.open(out / "credentials.yaml").units == before


def test_a_folder_in_the_way_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(tmp_path)
    out = tmp_path / "o"
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    before = CredentialStore.open(out / "credentials.yaml").units
    shutil.rmtree(out / "bench-a")
    (out / "bench-a").write_text("not a folder")
    assert main(["provision", "unit", "bench-a", "--inventory", str(inventory), "--out", str(out)]) == 2
    assert f"cannot write {out / 'bench-a'}" in capsys.readouterr().err
    assert CredentialStore.open(out / "credentials.yaml").units == before  # bench-a's card still works
