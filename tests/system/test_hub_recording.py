"""The hub as the lab's database: every seq a real unit produced is in the database and the run's CSVs.

Real Mosquitto, a unit process on simulated EZO instruments and mock pins, and
`labedge hub run` as a process of its own. Also: a Mosquitto restart mid-run
(persistence on) loses nothing between the unit and the database, and a
second hub on the same data_dir is refused, naming the first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.hub_rig import (
    assert_every_seq_recorded,
    bench,
    exited,
    kept_seqs,
    last_state,
    start_hub,
    start_running,
    wait_recorded,
    write_hub,
)
from tests.system.processes import stop

pytestmark = pytest.mark.system


async def test_every_seq_the_unit_produced_is_in_the_database_and_the_csvs(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port, hub_id = "sys-rec", mosquitto.port, "hub-sys-rec"
    async with probe("127.0.0.1", port, pattern="lab/#") as found:
        hub, data_dir = await start_running(tmp_path, port, unit, hub_id, found)
        try:
            with bench(tmp_path, unit, port) as (_, unit_proc):
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "running", 60,
                                     "the run")
                await found.wait_for(lambda: len(kept_seqs(found, unit, "ph1")) >= 25, 60, "readings")
                stop(unit_proc)  # everything it measured is sent before it exits
            await wait_recorded(found, data_dir, unit)
            run_dir = data_dir / "runs" / last_state(found, hub_id)["run_id"]
        finally:
            assert stop(hub) == 0
    assert_every_seq_recorded(found, data_dir, run_dir, unit, 25)
    assert not found.violations


async def test_a_broker_restart_mid_run_loses_no_reading(tmp_path: Path,
                                                         outage_broker: MosquittoProcess) -> None:
    unit, port, hub_id = "sys-brk", outage_broker.port, "hub-sys-brk"
    async with probe("127.0.0.1", port, pattern="lab/#", persistent=True) as found:
        hub, data_dir = await start_running(tmp_path, port, unit, hub_id, found)
        try:
            with bench(tmp_path, unit, port) as (_, unit_proc):
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "running", 60,
                                     "the run")
                await found.wait_for(lambda: len(kept_seqs(found, unit, "ph1")) >= 10, 60, "readings")
                outage_broker.stop()
                await asyncio.sleep(3.0)  # the unit measures into its outbox while there is no broker
                outage_broker.start()
                before = len(kept_seqs(found, unit, "ph1"))
                await found.wait_for(lambda: len(kept_seqs(found, unit, "ph1")) >= before + 25, 60,
                                     "readings after the restart")
                stop(unit_proc)
            await wait_recorded(found, data_dir, unit, timeout=60)
            run_dir = data_dir / "runs" / last_state(found, hub_id)["run_id"]
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
