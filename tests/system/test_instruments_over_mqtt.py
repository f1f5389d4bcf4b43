"""Issue acceptance, through real processes: simulators, `labedge edge run`, Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.rig import Probe, probe
from tests.system.processes import LABEDGE, simulators, start_unit, stop, write_unit

pytestmark = pytest.mark.system
THREE = {"ph1": "ph", "do1": "do", "temp1": "rtd"}


def contiguous_after_dedupe(seqs: list[int]) -> tuple[list[int], int]:
    """Drop repeats (a seq not above the highest seen); return (kept, repeats)."""
    kept: list[int] = []
    for seq in seqs:
        if not kept or seq > kept[-1]:
            kept.append(seq)
    return kept, len(seqs) - len(kept)


def mosquitto_sub_binary() -> str:
    for path in ("/usr/bin/mosquitto_sub", "/usr/local/bin/mosquitto_sub"):
        if Path(path).exists():
            return path
    pytest.skip("mosquitto_sub is not installed; run `make test`, which installs mosquitto-clients")


def test_outside_client_sees_unit_within_10_s(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    sub = subprocess.Popen([mosquitto_sub_binary(), "-h", "127.0.0.1", "-p", str(mosquitto.port),
                            "-t", "lab/#", "-v", "-W", "10"], stdout=subprocess.PIPE, text=True)
    with simulators(tmp_path, THREE):
        config = write_unit(tmp_path, "bench-a", mosquitto.port, THREE, period_s=1)
        unit = start_unit(config, tmp_path / "unit.log")
        try:
            out, _ = sub.communicate(timeout=15)
        finally:
            stop(unit)
    lines = [line.split(" ", 1) for line in out.splitlines() if " " in line]
    seen: dict[str, list[dict[str, object]]] = {}
    for topic, payload in lines:
        seen.setdefault(topic, []).append(json.loads(payload))
    assert any(p["state"] == "ready" for p in seen.get("lab/bench-a/$state", [])), sorted(seen)
    birth = seen["lab/bench-a/$birth"][0]
    assert set(birth["modules"]) == set(THREE)  # type: ignore[arg-type]
    for module in THREE:
        assert seen[f"lab/bench-a/{module}/state"], module
        seqs = [p["seq"] for p in seen.get(f"lab/bench-a/{module}/data", [])]
        assert len(seqs) >= 3, (module, seqs, (tmp_path / "unit.log").read_text()[-2000:])
        assert seqs == sorted(set(seqs)), seqs


async def wait_seqs(found: Probe, unit: str, modules: list[str], at_least: int, timeout: float = 15) -> None:
    await found.wait_for(lambda: all(len(found.seqs(unit, m)) >= at_least for m in modules),
                         timeout, f"{at_least} readings from each of {modules}")


async def test_broker_outage_of_30_s_loses_nothing(outage_broker: MosquittoProcess, tmp_path: Path) -> None:
    # 10 Hz per module: the simulators run 20x faster so a pH read takes 45 ms, not 900 ms.
    with simulators(tmp_path, THREE, ["--speed", "20"]):
        config = write_unit(tmp_path, "bench-b", outage_broker.port, THREE, period_s=0.1)
        unit = start_unit(config, tmp_path / "unit.log")
        try:
            async with probe("127.0.0.1", outage_broker.port, persistent=True) as found:
                await wait_seqs(found, "bench-b", list(THREE), 10)
                outage_broker.stop()
                await asyncio.sleep(30)
                outage_broker.start()
                # After the backlog, live data again: every module has a hist:false after a hist:true.
                def caught_up() -> bool:
                    for module in THREE:
                        data = found.on(f"lab/bench-b/{module}/data")
                        hist_at = [i for i, d in enumerate(data) if d["hist"]]
                        if not hist_at or not any(not d["hist"] for d in data[hist_at[-1]:]):
                            return False
                    return True
                await found.wait_for(caught_up, 60, "backlog replayed and live data flowing")
        finally:
            stop(unit)
    assert found.violations == []
    for module in THREE:
        data = found.on(f"lab/bench-b/{module}/data")
        kept, _repeats = contiguous_after_dedupe([d["seq"] for d in data])
        assert kept == list(range(kept[0], kept[-1] + 1)), f"{module}: gap in {kept}"
        hist = [d["seq"] for d in data if d["hist"]]
        assert len(hist) >= 200, f"{module}: only {len(hist)} backlog readings for a 30 s outage at 10 Hz"


async def test_kill_9_during_outage_keeps_the_outbox(outage_broker: MosquittoProcess, tmp_path: Path) -> None:
    with simulators(tmp_path, THREE, ["--speed", "20"]):
        config = write_unit(tmp_path, "bench-c", outage_broker.port, THREE, period_s=0.1)
        unit = start_unit(config, tmp_path / "unit.log")
        try:
            async with probe("127.0.0.1", outage_broker.port, persistent=True) as found:
                await wait_seqs(found, "bench-c", list(THREE), 5)
                outage_broker.stop()
                await asyncio.sleep(3)
                unit.send_signal(signal.SIGKILL)
                unit.wait()
                unit = start_unit(config, tmp_path / "unit2.log")
                await asyncio.sleep(2)
                outage_broker.start()
                # 5 s without a broker at 10 Hz is about 50 readings a module; then live data again.
                await found.wait_for(
                    lambda: all((data := found.on(f"lab/bench-c/{m}/data")) and data[-1]["seq"] >= 45
                                and not data[-1]["hist"] for m in THREE),
                    60, "backlog from both runs replayed, then live data")
        finally:
            stop(unit)
    for module in THREE:
        kept, _ = contiguous_after_dedupe(found.seqs("bench-c", module))
        assert kept == list(range(kept[0], kept[-1] + 1)), f"{module}: lost readings across kill -9"
        assert len(kept) >= 40


async def test_simulator_unplugged_and_back(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    with simulators(tmp_path, THREE, ["--speed", "5"]) as sims:
        config = write_unit(tmp_path, "bench-d", mosquitto.port, THREE, period_s=0.3)
        unit = start_unit(config, tmp_path / "unit.log")
        try:
            async with probe("127.0.0.1", mosquitto.port) as found:
                await wait_seqs(found, "bench-d", list(THREE), 3)
                sims["ph1"].send_signal(signal.SIGUSR1)  # unplug
                unplugged = time.monotonic()
                state = await found.wait_for(
                    lambda: (s := found.module_state("bench-d", "ph1")) and s["lecis"] == "ERROR" and s,
                    10, "ph1 in ERROR")
                assert state["error"]["code"]
                others_before = {m: len(found.seqs("bench-d", m)) for m in ("do1", "temp1")}
                await asyncio.sleep(2)
                sims["ph1"].send_signal(signal.SIGUSR2)  # plugged back in
                back = time.monotonic()
                await found.wait_for(
                    lambda: (s := found.module_state("bench-d", "ph1")) and s["lecis"] == "IDLE", 10,
                    "ph1 back to IDLE within 10 s")
                assert time.monotonic() - back < 10
                count = len(found.seqs("bench-d", "ph1"))
                await found.wait_for(lambda: len(found.seqs("bench-d", "ph1")) > count + 2, 10,
                                     "ph1 readings resume")
                for module, before in others_before.items():
                    assert len(found.seqs("bench-d", module)) > before + 3, f"{module} stopped"
                assert time.monotonic() - unplugged < 30
        finally:
            stop(unit)
    assert found.violations == []


def test_bad_configuration_exits_2_naming_file_line_field(tmp_path: Path) -> None:
    (tmp_path / "dcd").mkdir()
    (tmp_path / "dcd" / "ph1.yaml").write_text("module: ph1\ndriver: ezo\nprobe: ph\nport: /dev/nope\n"
                                                "perod_s: 1\n")
    (tmp_path / "dcd" / "ph2.yaml").write_text("module: ph1\ndriver: ezo\nprobe: ph\nport: /dev/nope2\n")
    (tmp_path / "unit.yaml").write_text(
        "unit: bench-e\ndata_dir: ./data\nmodules: [dcd/ph1.yaml, dcd/ph2.yaml]\n")
    result = subprocess.run([*LABEDGE, "edge", "run", "--config",
                             str(tmp_path / "unit.yaml")], capture_output=True, text=True, timeout=30,
                            env={**os.environ})
    assert result.returncode == 2
    err = result.stderr
    assert "ph1.yaml:5" in err and "perod_s" in err
    assert "/dev/nope" in err and "ph1.yaml:4" in err
    assert "duplicate" in err.lower()
    assert not (tmp_path / "data").exists(), "nothing may start half-configured"


async def test_unit_works_with_the_embedded_broker(tmp_path: Path) -> None:
    from provisioning.broker import free_port, run_embedded_broker

    port = free_port()
    stop_broker = asyncio.Event()
    broker = asyncio.create_task(run_embedded_broker("127.0.0.1", port, stop_broker))
    await asyncio.sleep(0.5)
    try:
        with simulators(tmp_path, {"temp1": "rtd"}, ["--speed", "5"]):
            config = write_unit(tmp_path, "bench-f", port, {"temp1": "rtd"}, period_s=0.2)
            unit = start_unit(config, tmp_path / "unit.log")
            try:
                async with probe("127.0.0.1", port) as found:
                    await wait_seqs(found, "bench-f", ["temp1"], 3)
            finally:
                stop(unit)
    finally:
        stop_broker.set()
        await broker
