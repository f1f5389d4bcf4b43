"""`kill -9` of the hub mid-run and a restart: it resumes, no timed task fires twice, no seq is lost.

The unit runs on mock pins that write every level they take to a file (even
through a SIGKILL), so "fired once" is read from the heater's pin, and every
command from the run's commands.jsonl.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.hub_rig import (
    assert_every_seq_recorded,
    bench,
    commands,
    kept_seqs,
    last_state,
    rising_edges,
    start_hub,
    start_running,
    wait_recorded,
)
from tests.system.processes import read_pin_log, stop

pytestmark = pytest.mark.system


def on_ids(run_dir: Path, module: str, task: str, done: bool = False) -> set[str]:
    """The ids of the `on` commands a task sent (not the outputs re-applied after the restart);
    with `done`, only those the unit carried out (one sent as the unit stopped fails)."""
    return {c["effect_id"] for c in commands(run_dir)
            if c["module"] == module and c["cmd"] == "on" and c["origin"] == f"task:{task}"
            and (not done or (c["outcome"] or {}).get("status") == "done")}


async def test_a_hub_killed_mid_run_resumes_and_fires_nothing_twice(tmp_path: Path,
                                                                   mosquitto: MosquittoProcess) -> None:
    unit, port, hub_id = "sys-kill", mosquitto.port, "hub-sys-kill"
    async with probe("127.0.0.1", port, pattern="lab/#") as found:
        hub, data_dir = await start_running(tmp_path, port, unit, hub_id, found, heat_at="4s")
        config = tmp_path / "hub" / "hub.yaml"
        try:
            with bench(tmp_path, unit, port) as (bench_dir, unit_proc):
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "running", 60,
                                     "the run")
                run_id = last_state(found, hub_id)["run_id"]
                # Killed in the middle of heat_once: heater on, the 1 s wait, then off.
                await found.wait_for(lambda: rising_edges(bench_dir, "heater") == 1, 30, "the heater on")
                os.kill(hub.pid, signal.SIGKILL)
                hub.wait()
                killed_at = time.monotonic()
                hub = start_hub(config, tmp_path / "hub-2.log")

                def resumed() -> float | None:
                    for m in found.messages:
                        if m.topic == "lab/hub/experiment/state" and m.at > killed_at and \
                                m.payload.get("hub") == hub_id and m.payload.get("resumed") and \
                                m.payload.get("state") == "running":
                            return m.at
                    return None

                resumed_at = await found.wait_for(resumed, 30, "the run resumed")
                hub_states = [m.payload["online"] for m in found.messages
                              if m.topic == "lab/hub/$state" and m.at > killed_at - 1.0]
                assert False in hub_states  # the killed hub's will
                assert found.last("lab/hub/$state")["online"] is True
                print(f"resumed {resumed_at - killed_at:.2f} s after the kill (hub process start included)")
                assert last_state(found, hub_id)["run_id"] == run_id
                run_dir = data_dir / "runs" / run_id
                ticks = len(on_ids(run_dir, "aeration", "tick"))
                await found.wait_for(lambda: len(on_ids(run_dir, "aeration", "tick")) >= ticks + 3, 30,
                                     "three more ticks after the restart")
                await found.wait_for(lambda: read_pin_log(bench_dir / "pins.log")["GPIO22"][-1][1] == 0.0,
                                     10, "the heater off (the interrupted sequence finished)")
                fired = last_state(found, hub_id)["fired"]
                stop(unit_proc)
            await wait_recorded(found, data_dir, unit)
        finally:
            assert stop(hub) == 0
    assert fired["heat_once"] == 1
    assert rising_edges(bench_dir, "heater") == 1  # the at-task fired once, across the kill
    # One id at most (the kill may cost the last lines of commands.jsonl, never a second firing).
    assert len(on_ids(run_dir, "heater", "heat_once")) <= 1
    # Each tick turned the aeration on once, the one interrupted by the kill too (re-sent with its id,
    # or known done from the saved state); the newest may still be on its way to the unit.
    ticks_fired = sum(1 for e in found.on("lab/hub/experiment/event")
                      if e.get("hub") == hub_id and e["code"] == "task_fired" and e["origin"] == "task:tick")
    ticks_fired = max(ticks_fired, fired["tick"])  # an event the killed hub had no time to publish
    assert ticks_fired - 1 <= rising_edges(bench_dir, "aeration") <= ticks_fired
    assert_every_seq_recorded(found, data_dir, run_dir, unit, 5)
    assert kept_seqs(found, unit, "ph1")
