"""A real lab for the dashboard's tests: Mosquitto, a unit on simulators, `labedge hub run` with `web:`.

The hub runs the system tests' script (aeration every 2 s, the heater once),
so outputs switch and the page has something to mark. Chromium is Debian's
(`/usr/bin/chromium`): Playwright never downloads a browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provisioning.broker import free_port
from tests.system.hub_rig import bench, start_hub, write_bench, write_hub, write_script
from tests.system.processes import stop

UNIT = "bench-7"
USER, PASSWORD = "ada", "correct horse battery"
VIEWER, VIEWER_PASSWORD = "tom", "viewer password"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "browser"


@dataclass
class WebLab:
    url: str
    unit: str
    data_dir: Path
    bench_dir: Path
    hub: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def token(self, user: str = USER, password: str = PASSWORD) -> str:
        status, body = self.api("POST", "/api/login", {"username": user, "password": password})
        assert status == 200, body
        return str(body["token"])


def chromium_or_skip() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; the install script installs the chromium package")
        pytest.skip("Debian's chromium is not installed; run `make test`, which installs it")
    return CHROMIUM


def users_yaml() -> str:
    from hub.web.passwords import hash_password

    return (f"users:\n  {USER}: {{role: operator, password_hash: '{hash_password(PASSWORD)}'}}\n"
            f"  {VIEWER}: {{role: viewer, password_hash: '{hash_password(VIEWER_PASSWORD)}'}}\n")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the hub exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "api/openapi.json", timeout=2):
                return
        time.sleep(0.1)
    raise AssertionError(f"the dashboard did not answer at {url} within {timeout:g} s")


def wait_unit_ready(lab: WebLab, timeout: float = 60.0) -> None:
    """Until the hub sees the unit ready (its process and simulators take a while on a loaded machine)."""
    token = lab.token()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, unit = lab.api("GET", f"/api/units/{lab.unit}", token=token)
        if status == 200 and unit["presence"] == "ready" and len(unit["modules"]) >= 6:
            return
        time.sleep(0.2)
    raise AssertionError(f"unit {lab.unit} not ready within {timeout:g} s (see {lab.log})")


@contextlib.contextmanager
def web_lab(tmp: Path, broker_port: int, script: bool = True, unit: str = UNIT) -> Iterator[WebLab]:
    bench_dir = tmp / "bench"
    write_bench(bench_dir, unit, broker_port)
    script_path = write_script(bench_dir, unit, heat_at="4s") if script else None
    port = free_port()
    config = write_hub(tmp / "hub", broker_port, script_path,
                       extra=f"web: {{host: 127.0.0.1, port: {port}}}\n{users_yaml()}")
    log = tmp / "hub.log"
    with bench(tmp, unit, broker_port) as (bench_dir, _unit):
        hub = start_hub(config, log)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_http(url, hub, log)
            lab = WebLab(url, unit, tmp / "hub" / "data", bench_dir, hub, log)
            wait_unit_ready(lab)
            yield lab
        finally:
            stop(hub)


@contextlib.contextmanager
def checked_page(browser: Any) -> Iterator[Any]:
    """A page in a context of its own; the test fails if a script on it raised."""
    # bypass_csp: the page forbids eval, which Playwright needs for wait_for_function
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


def save_artifact(name: str, source: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, ARTIFACTS / name)
