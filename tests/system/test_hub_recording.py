"""The hub as the lab's database: every seq a real unit produced is in the database and the run's CSVs.

Real Mosquitto, a unit process on simulated EZO instruments and mock pins, and
`labedge hub run` as a process of its own. Also: a Mosquitto restart mid-run
(persistence on) loses nothing between the unit and the database, and a
second hub on the same data_dir is refused, naming the first.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.rig import Probe, probe
from tests.system.hub_rig import (
    INSTRUMENTS,
    bench,
    csv_seqs,
    exited,
    kept_seqs,
    last_state,
    start_hub,
    stored_seqs,
    write_bench,
    write_hub,
    write_script,
)
from tests.system.processes import stop

pytestmark = pytest.mark.system


async def wait_recorded(found: Probe, data_dir: Path, unit: str, timeout: float = 30.0) -> None:
    """Until the database holds the last seq the broker carried of every instrument."""
    async with asyncio.timeout(timeout):
        while True:
            behind = [m for m in INSTRUMENTS if (stored_seqs(data_dir, unit, m) or [0])[-1]
                      < (kept_seqs(found, unit, m) or [0])[-1]]
            if not behind:
                return
            await asyncio.sleep(0.1)


def assert_every_seq_recorded(found: Probe, data_dir: Path, run_dir: Path, unit: str, minimum: int) -> None:
    for module in INSTRUMENTS:
        kept = kept_seqs(found, unit, module)
        assert len(kept) >= minimum, f"{module}: only {len(kept)} messages seen"
        assert kept == list(range(kept[0], kept[-1] + 1)), f"{module}: the unit's own stream has gaps"
        assert stored_seqs(data_dir, unit, module) == kept, f"{module}: the database differs from the unit"
        data = sorted({m.payload["seq"] for m in found.messages if m.topic == f"lab/{unit}/{module}/data"})
        assert csv_seqs(run_dir, unit, module) == data, f"{module}: the CSVs differ from the unit's data"


async def start_running(tmp: Path, port: int, unit: str, hub: str, found: Probe
                        ) -> tuple[subprocess.Popen[bytes], Path]:
    config = write_hub(tmp / "hub", port, tmp / "bench" / "script.yaml", hub=hub)
    write_bench(tmp / "bench", unit, port)  # the script names it; the unit starts later
    write_script(tmp / "bench", unit)
    proc = start_hub(config, tmp / "hub.log")
    await found.wait_for(lambda: (found.last("lab/hub/$state") or {}).get("online"), 30, "the hub online")
    return proc, tmp / "hub" / "data"


async def test_every_seq_the_unit_produced_is_in_the_database_and_the_csvs(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "sys-rec", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found:
        hub, data_dir = await start_running(tmp_path, port, unit, "hub-sys-rec", found)
        try:
            with bench(tmp_path, unit, port) as (_, unit_proc):
                await found.wait_for(lambda: last_state(found).get("state") == "running", 60, "the run")
                await found.wait_for(lambda: len(kept_seqs(found, unit, "ph1")) >= 25, 60, "readings")
                stop(unit_proc)  # everything it measured is sent before it exits
            await wait_recorded(found, data_dir, unit)
            run_dir = data_dir / "runs" / last_state(found)["run_id"]
        finally:
            assert stop(hub) == 0
    assert_every_seq_recorded(found, data_dir, run_dir, unit, 25)
    assert not found.violations


async def test_a_broker_restart_mid_run_loses_no_reading(tmp_path: Path,
                                                         outage_broker: MosquittoProcess) -> None:
    unit, port = "sys-brk", outage_broker.port
    async with probe("127.0.0.1", port, pattern="lab/#", persistent=True) as found:
        hub, data_dir = await start_running(tmp_path, port, unit, "hub-sys-brk", found)
        try:
            with bench(tmp_path, unit, port) as (_, unit_proc):
                await found.wait_for(lambda: last_state(found).get("state") == "running", 60, "the run")
                await found.wait_for(lambda: len(kept_seqs(found, unit, "ph1")) >= 10, 60, "readings")
                outage_broker.stop()
                await asyncio.sleep(3.0)  # the unit measures into its outbox while there is no broker
                outage_broker.start()
                before = len(kept_seqs(found, unit, "ph1"))
                await found.wait_for(lambda: len(kept_seqs(found, unit, "ph1")) >= before + 25, 60,
                                     "readings after the restart")
                stop(unit_proc)
            await wait_recorded(found, data_dir, unit, timeout=60)
            run_dir = data_dir / "runs" / last_state(found)["run_id"]
        finally:
            assert stop(hub) == 0
    assert_every_seq_recorded(found, data_dir, run_dir, unit, 35)


async def test_a_second_hub_on_the_same_data_dir_is_refused(tmp_path: Path,
                                                            mosquitto: MosquittoProcess) -> None:
    port = mosquitto.port
    data_dir = tmp_path / "shared"
    first_config = write_hub(tmp_path / "one", port, None, data_dir=data_dir, hub="hub-sys-one")
    second_config = write_hub(tmp_path / "two", port, None, data_dir=data_dir, hub="hub-sys-two")
    async with probe("127.0.0.1", port, pattern="lab/hub/$state") as found:
        first = start_hub(first_config, tmp_path / "one.log")
        try:
            await found.wait_for(lambda: (found.last("lab/hub/$state") or {}).get("online"), 30, "first hub")
            second = start_hub(second_config, tmp_path / "two.log")
            assert await exited(second, 30) == 2
            assert first.poll() is None
        finally:
            assert stop(first) == 0
    said = (tmp_path / "two.log").read_text()
    assert f"the data folder {data_dir} is in use by another hub, pid {first.pid} (hub hub-sys-one" in said
