"""hub.yaml: every problem with file:line, a did-you-mean for unknown keys, paths from the file's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_hub_config
from lecis.errors import ConfigError


def write(tmp: Path, text: str) -> Path:
    path = tmp / "hub.yaml"
    path.write_text(text)
    return path


def problems(path: Path, check_files: bool = True) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_hub_config(path, check_files)
    return [str(p) for p in caught.value.problems]


def test_a_minimal_config_gets_defaults_and_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text("experiment: x\n")
    config = load_hub_config(write(tmp_path, "hub: hub-1\nbroker: {host: 10.0.0.2, port: 1884}\n"
                                             "data_dir: ./var/hub\nscript: exp.yaml\n"))
    assert config.hub == "hub-1" and config.client_id == "labedge-hub-hub-1"
    assert (config.broker.host, config.broker.port) == ("10.0.0.2", 1884)
    assert config.data_dir == tmp_path / "var" / "hub"
    assert config.script == tmp_path / "exp.yaml"
    assert config.topic_root == "lab" and config.lease_ttl_s == 30.0


def test_without_a_script_the_hub_only_records(tmp_path: Path) -> None:
    config = load_hub_config(write(tmp_path, "hub: hub-1\nbroker: {}\ndata_dir: d\n"))
    assert config.script is None


def test_every_problem_at_once_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hub: Hub_1\nbroker: {host: h, prot: 1883}\ndata_dir: d\nscript: nope.yaml\n"
                           "stroage: {}\ntopic_root: 'a b'\n")
    found = problems(path)
    assert f"{path}:1: hub: expected a hub id (lower-case letters, digits and -, up to 32 characters, " \
           "e.g. hub-1), got 'Hub_1'" in found
    assert f"{path}:2: broker.prot: unknown key 'prot'; did you mean 'port'?" in found
    assert f"{path}:4: script: script {tmp_path / 'nope.yaml'} does not exist" in found
    assert f"{path}:5: stroage: unknown key 'stroage'; did you mean 'storage'?" in found
    assert any(p.startswith(f"{path}:6: topic_root: expected a topic root") for p in found)
    assert len(found) == 5


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "topic_root: lab\n")
    found = problems(path)
    assert f"{path}:1: hub: missing; expected a hub id (lower-case letters, digits and -, up to 32 " \
           "characters, e.g. hub-1)" in found
    assert any(p.startswith(f"{path}:1: broker: missing") for p in found)
    assert any(p.startswith(f"{path}:1: data_dir: missing") for p in found)


def test_files_need_not_exist_when_checked_elsewhere(tmp_path: Path) -> None:
    path = write(tmp_path, "hub: hub-1\nbroker: {tls_ca: ca.pem}\ndata_dir: d\nscript: s.yaml\n")
    assert len(problems(path)) == 2
    config = load_hub_config(path, check_files=False)
    assert config.broker.tls_ca == str(tmp_path / "ca.pem")


def test_the_example_is_valid() -> None:
    config = load_hub_config(Path(__file__).resolve().parents[2] / "examples" / "hub.yaml", check_files=False)
    assert config.hub == "hub-1"
