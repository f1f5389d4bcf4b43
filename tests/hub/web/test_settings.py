"""hub.yaml's web: and users: keys, read strictly: every problem with its line, no plain password."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_hub_config
from hub.web.passwords import hash_password
from lecis.errors import ConfigError

HEAD = "hub: hub-1\nbroker: {host: 127.0.0.1, port: 1883}\ndata_dir: ./var\n"


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "hub.yaml"
    path.write_text(HEAD + text)
    return load_hub_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def test_web_and_users_are_read(tmp_path: Path) -> None:
    digest = hash_password("pw")
    users = f"users:\n  ada: {{role: operator, password_hash: '{digest}'}}\n"
    config = load(tmp_path, "web: {port: 8181}\n" + users)
    assert config.web is not None and (config.web.host, config.web.port) == ("127.0.0.1", 8181)
    assert config.web.cookie_secure is None
    assert [(u.name, u.role, u.password_hash) for u in config.users] == [("ada", "operator", digest)]


def test_no_web_key_means_no_dashboard(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.web is None and config.users == ()


def test_every_problem_is_named_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "web: {port: 99999, hots: x}\nusers:\n"
                               "  ada: {role: admin, password_hash: hunter2}\n"
                               "  Bad Name: {role: viewer, password_hash: x}\n")
    text = "\n".join(found)
    assert "hub.yaml:4" in text and "port" in text
    assert "'hots'" in text and "did you mean 'host'" in text
    assert "hub.yaml:6" in text and "one of viewer, operator" in text
    assert "not an argon2 hash" in text and "labedge hub user add ada" in text
    assert "hub.yaml:7" in text and "'Bad Name'" in text


def test_a_dashboard_without_users_is_refused(tmp_path: Path) -> None:
    assert any("at least one user" in p for p in problems(tmp_path, "web: {port: 8080}\n"))
