"""`labedge hub user add`: a hash into hub.yaml (comments kept), never the password; a refusal changes
nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hub.config import load_hub_config
from hub.web.passwords import verify_password
from labedge.cli import main

HUB = ("# our hub\nhub: hub-1  # id\nbroker: {host: 127.0.0.1, port: 1883}\ndata_dir: ./var\n"
       "web: {port: 8080}\n")


def add(monkeypatch: pytest.MonkeyPatch, config: Path, *args: str, password: str = "long enough") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["hub", "user", "add", *args, "--config", str(config), "--password-stdin"])


def test_the_hash_is_written_and_the_rest_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(HUB)
    assert add(monkeypatch, config, "ada", "--role", "operator") == 0
    text = config.read_text()
    assert text.startswith("# our hub\nhub: hub-1  # id\n") and "long enough" not in text
    (user,) = load_hub_config(config, check_files=False).users
    assert (user.name, user.role) == ("ada", "operator")
    assert verify_password(user.password_hash, "long enough")


def test_refusals_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(HUB)
    assert add(monkeypatch, config, "ada", "--role", "viewer") == 0
    written = config.read_text()
    assert add(monkeypatch, config, "ada", "--role", "operator") == 1
    assert "--replace" in capsys.readouterr().err
    assert add(monkeypatch, config, "bob", "--role", "viewer", password="short") == 1
    assert add(monkeypatch, config, "Bad Name", "--role", "viewer") == 2
    config.write_text(written + "lease_ttl_s: 1\n")
    assert add(monkeypatch, config, "bob", "--role", "viewer") == 2
    assert "lease_ttl_s" in capsys.readouterr().err and "bob" not in config.read_text()
    config.write_text(written)
    assert add(monkeypatch, config, "ada", "--role", "operator", "--replace") == 0
    assert load_hub_config(config, check_files=False).users[0].role == "operator"
    assert not list(tmp_path.glob(".*check"))
