"""`labedge lab` in a folder whose path has spaces, %, #, : and ' (a clone under "My Projects")."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from provisioning.broker import free_port, wait_listening
from tests.brokers import require_mosquitto
from tests.provisioning.broker_clients import Client


def test_the_lab_runs_in_a_folder_with_spaces_percent_and_hash(tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    require_mosquitto()
    # Under a short folder of its own: the units' socket paths must stay under 108 bytes, and pytest's
    # tmp_path can be deep (a worker's folder under xdist).
    short = Path(tempfile.mkdtemp(prefix="lab-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    lab_dir = short / "my 5%(x)s c#1: '"
    port = free_port()
    args = [sys.executable, "-m", "labedge", "lab", "--dir", str(lab_dir), "--port", str(port), "--web-port",
            str(free_port()), "--bucket-port", str(free_port()), "--no-watch"]
    log = tmp_path / "lab.log"
    with log.open("wb") as out:
        lab = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    watcher = None
    try:
        wait_listening("127.0.0.1", port, timeout=60)
        watcher = Client(port, None, None, "lab-paths-test")
        watcher.subscribe("lab/+/$state")
        watcher.wait(lambda: {t for t, raw in watcher.messages if b'"ready"' in raw}  # type: ignore[union-attr]
                     >= {"lab/bench-1/$state", "lab/bench-2/$state"}, "both units ready", 120)
        pressed = subprocess.run([sys.executable, "-m", "labedge", "lab", "button", "bench-2", "start",
                                  "--dir", str(lab_dir)], capture_output=True, text=True, timeout=60)
        assert "pressed start on bench-2" in pressed.stdout, (pressed.stdout, pressed.stderr)
        os.killpg(lab.pid, signal.SIGINT)
        assert lab.wait(90) == 0
        assert (lab_dir / "bench-1" / "data").is_dir()  # the unit's data folder, as written
    finally:
        if watcher is not None:
            watcher.close()
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGINT)
            try:
                lab.wait(60)
            except subprocess.TimeoutExpired:
                lab.kill()
    assert "labedge lab: stopped" in log.read_text()


@pytest.mark.parametrize("name", ['say "hi"', "lab #1", "lab ;1", "back\\slash"])
def test_a_folder_supervisor_cannot_carry_is_refused_by_name(tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    args = [sys.executable, "-m", "labedge", "lab", "--dir", str(bad), "--port", str(free_port()),
            "--no-watch"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "supervisor's config cannot carry" in done.stderr, done.stderr
    assert not (bad / "supervisord.conf").exists()
