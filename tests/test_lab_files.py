"""The one-machine lab's generated files are what `labedge edge run` accepts."""

from __future__ import annotations

import asyncio
import configparser
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub.config import load_hub_config
from labedge.lab_files import SCRIPT, write_lab_files
from lecis.config_loader import load_unit_config
from provisioning.broker import free_port, wait_listening
from tests.brokers import require_mosquitto
from tests.rig import probe
from tests.system.processes import LABEDGE, stop

SUPERVISORCTL = str(Path(sys.executable).with_name("supervisorctl"))


def test_lab_files_make_a_valid_unit_and_supervisor_config(tmp_path: Path) -> None:
    conf = write_lab_files(tmp_path, 18830, "/usr/bin/labedge")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf)
    programs = {s.split(":", 1)[1] for s in parser.sections() if s.startswith("program:")}
    assert programs == {"broker", "bucket", "hub", "sim-vessel", "board", "unit-bench-1", "sim-vessel-2",
                        "board-2", "unit-bench-2"}
    assert parser["program:unit-bench-2"]["autostart"] == "false"
    bench2 = load_unit_config(tmp_path / "bench-2" / "unit.yaml", check_ports=False)
    assert [m.module for m in bench2.modules] == ["ph1", "temp1", "feed_pump"]
    assert bench2.modules[2].settings["port"] == str(tmp_path / "dev" / "bench-2" / "board")
    board = parser["program:board"]["command"]
    assert board.endswith(f"-m firmware_bridge.emulated --link {tmp_path}/dev/board")
    assert "--pin-factory mock" in parser["program:unit-bench-1"]["command"]
    # The unit starts only once the simulators' ports exist (labedge lab starts it).
    assert parser["program:unit-bench-1"]["autostart"] == "false"
    assert parser["program:sim-vessel"]["autostart"] == "true"
    config = load_unit_config(tmp_path / "bench-1" / "unit.yaml", check_ports=False)
    assert config.broker.port == 18830
    assert {m.module for m in config.modules} == {"ph1", "do1", "temp1", "base_pump", "aeration", "heater",
                                                  "feed_pump"}
    feed = next(m for m in config.modules if m.module == "feed_pump")
    assert feed.driver == "bridge" and feed.settings["port"] == str(tmp_path / "dev" / "board")
    assert config.buttons.stop_pin == 6
    hub = load_hub_config(tmp_path / "hub" / "hub.yaml", check_files=False)
    assert hub.broker.port == 18830 and hub.script == SCRIPT
    assert hub.web is not None and hub.web.port == 8080 and [u.name for u in hub.users] == ["demo"]
    assert hub.storage is not None and hub.storage.bucket == "labedge-lab"
    assert 'STORAGE_EMULATOR_HOST="http://127.0.0.1:9023"' in parser["program:hub"]["environment"]
    assert parser["program:hub"]["command"] == f"/usr/bin/labedge hub run --config {tmp_path}/hub/hub.yaml"


async def test_a_second_lab_on_the_same_folder_changes_nothing_and_names_the_first(tmp_path: Path) -> None:
    require_mosquitto()
    lab_dir, port = tmp_path / "lab", free_port()
    first = start_lab(lab_dir, port, tmp_path / "first.log")
    try:
        await asyncio.to_thread(wait_listening, "127.0.0.1", port, 30)
        async with probe("127.0.0.1", port, pattern="lab/bench-1/$state") as found:
            ready = await found.wait_for(lambda: _ready(found), 90, "the first lab's unit ready")
            files = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in (
                lab_dir / "bench-1" / "unit.yaml", lab_dir / "supervisord.conf",
                lab_dir / "bench-1" / "dcd" / "ph1.yaml")}

            second = await asyncio.to_thread(lab, "--dir", str(lab_dir), "--port", str(free_port()))
            assert second.returncode == 2
            assert second.stderr.splitlines() == [
                f"labedge lab: a lab is already running in {lab_dir}: pid {first.pid} (port {port}). "
                "Stop it (Ctrl-C where it runs), or use another --dir; nothing was changed."]
            assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files} == files

            other_dir = tmp_path / "other"
            third = await asyncio.to_thread(lab, "--dir", str(other_dir), "--port", str(port))
            assert third.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in third.stderr
            assert not (other_dir / "bench-1" / "unit.yaml").exists()

            # The first lab is whole: its unit restarts on its own broker.
            conf = lab_dir / "supervisord.conf"
            await asyncio.to_thread(subprocess.run, [SUPERVISORCTL, "-c", str(conf), "restart",
                                                     "unit-bench-1"], check=True, capture_output=True)
            await found.wait_for(lambda: _ready(found) and _ready(found) != ready, 60,
                                 "the first lab's unit ready again after a restart")
        supervisord = int((lab_dir / "supervisord.pid").read_text())
    finally:
        code = stop(first, signal.SIGTERM, timeout=40)
    assert code == 0
    assert not Path(f"/proc/{supervisord}").exists(), "SIGTERM stops the lab's supervisord too"


def _ready(found: Any) -> str | None:
    """The boot id of the lab unit's last `ready` state, if that is its last state."""
    state = found.last("lab/bench-1/$state") or {}
    return state.get("boot") if state.get("state") == "ready" else None


def start_lab(lab_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen([*LABEDGE, "lab", "--no-watch", "--dir", str(lab_dir), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LABEDGE, "lab", "--no-watch", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
