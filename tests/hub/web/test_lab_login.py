"""`make run` (labedge lab): the banner prints the dashboard and the demo login on a line each, and that
login is a real operator of the lab's hub.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.config import load_hub_config
from hub.web.passwords import verify_password
from labedge.lab import lab_banner
from labedge.lab_files import DEMO_PASSWORD, DEMO_USER, write_lab_files


def test_the_banner_names_the_dashboard_and_a_login_that_works(tmp_path: Path) -> None:
    args = argparse.Namespace(dir=tmp_path, port=1884, web_port=8181, bucket_port=9024)
    lines = lab_banner(args, tmp_path).splitlines()
    assert "dashboard: http://127.0.0.1:8181/" in lines
    assert f"login: {DEMO_USER} / {DEMO_PASSWORD}" in lines
    write_lab_files(tmp_path, 1884, "labedge", 8181, 9024)
    config = load_hub_config(tmp_path / "hub" / "hub.yaml", check_files=False)
    assert config.web is not None and (config.web.host, config.web.port) == ("127.0.0.1", 8181)
    (user,) = [u for u in config.users if u.name == DEMO_USER]
    assert user.role == "operator" and verify_password(user.password_hash, DEMO_PASSWORD)
