"""`labedge sim vessel`: a unit's EZO circuits on their ports, reading one vessel that follows the outputs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt

from lecis.topics import Topics
from provisioning.broker import MosquittoProcess
from tests.sim.test_ezo_device import client

REPO = Path(__file__).resolve().parents[2]


def write_unit(tmp: Path, port: int) -> Path:
    (tmp / "dev").mkdir()
    (tmp / "dcd").mkdir()
    for module, probe in (("ph1", "ph"), ("do1", "do"), ("temp1", "rtd")):
        (tmp / "dcd" / f"{module}.yaml").write_text(
            f"module: {module}\ndriver: ezo\nprobe: {probe}\nport: {tmp / 'dev' / module}\n")
    (tmp / "dcd" / "aeration.yaml").write_text(
        "module: aeration\ndriver: gpio.switch\npin: 27\nmax_on_s: 3600\n")
    config = tmp / "unit.yaml"
    config.write_text(f"unit: bench-9\nbroker: {{host: 127.0.0.1, port: {port}}}\ndata_dir: {tmp / 'data'}\n"
                      "modules: [dcd/ph1.yaml, dcd/do1.yaml, dcd/temp1.yaml, dcd/aeration.yaml]\n")
    return config


async def mg_l(circuit: Any) -> float:
    """The next reading's mg/L (continuous readings: mg/L first); the boot banner `*RE` goes to the
    first client, so it may come before or after readings the pty held until the port was opened."""
    line = await circuit.line(10.0)
    while line.startswith("*"):
        line = await circuit.line(10.0)
    return float(line.split(",")[0])


async def test_the_circuits_read_water_that_the_aeration_state_oxygenates(mosquitto: MosquittoProcess,
                                                                        tmp_path: Path) -> None:
    config = write_unit(tmp_path, mosquitto.port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sim.cli", "sim", "vessel", "--unit-config", str(config), "--speed", "50",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        banners = [(await asyncio.wait_for(proc.stdout.readline(), 20.0)).decode() for _ in range(4)]
        assert [b for b in banners if "serving" in b and str(tmp_path / "dev" / "do1") in b]
        assert "vessel follows aeration->aeration of bench-9" in banners[-1]
        async with client(str(tmp_path / "dev" / "do1")) as do1:
            first = await mg_l(do1)
            assert 1.0 < first < 2.5  # the sludge's oxygen before any aeration
            state = {"lecis": "IDLE", "control": "REMOTE", "outputs": {"on": True}, "error": None,
                     "ts": "2026-01-01T00:00:00.000Z"}
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mqtt:
                await mqtt.publish(Topics().module_state("bench-9", "aeration"), json.dumps(state), qos=1,
                                   retain=True)
            async with asyncio.timeout(20):  # 20 wall s are 1000 s of vessel time at x50
                while await mg_l(do1) < 4.0:
                    pass
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10.0) == 0
        assert not (tmp_path / "dev" / "do1").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_a_unit_without_ezo_circuits_is_refused(tmp_path: Path) -> None:
    config = write_unit(tmp_path, 1883)
    config.write_text(config.read_text().replace("dcd/ph1.yaml, dcd/do1.yaml, dcd/temp1.yaml, ", ""))
    done = subprocess.run([sys.executable, "-m", "sim.cli", "sim", "vessel", "--unit-config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "has no EZO instrument (driver: ezo) to simulate" in done.stderr


def test_a_broken_unit_config_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "unit.yaml"
    config.write_text("unit: Bench 9\n")
    done = subprocess.run([sys.executable, "-m", "sim.cli", "sim", "vessel", "--unit-config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and str(config) in done.stderr
