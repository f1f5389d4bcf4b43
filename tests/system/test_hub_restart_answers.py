"""`kill -9` of the hub after the units answered but before the answers were saved, and a restart.

The controller saves a command's answer after the fact, on a thread of its own (the write-ahead save
before a command goes out is unchanged). Here the hub runs with those later saves held
(LABEDGE_HUB_DEFERRED_SAVE_S), so the kill is certain to come after the answers reached the hub (their
lines are in commands.jsonl) and before the saved state knew them. The resume re-sends the commands in
flight with their ids; the unit answers them from its kept replies: each output went on once, and the
sequences go on from there.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.hub_rig import (
    bench,
    commands,
    last_state,
    rising_edges,
    write_bench,
    write_hub,
    write_script,
)
from tests.system.processes import read_pin_log, spawn, stop

pytestmark = pytest.mark.system

SCRIPT = """\
experiment: answers not saved at the kill
units:
  {unit}: unit.yaml
stale_after: 30s
tasks:
  - name: heat
    at: 3s
    do:
      - {unit}/heater: on
      - wait: 6s
      - {unit}/heater: off
      - log: "heated once"
  - name: aerate
    at: 3s
    do:
      - {unit}/aeration: on
      - wait: 6s
      - {unit}/aeration: off
      - log: "aerated once"
"""


def sent(run_dir: Path, module: str, cmd: str) -> list[dict[str, object]]:
    return [c for c in commands(run_dir) if c["module"] == module and c["cmd"] == cmd]


def answered(run_dir: Path, module: str) -> bool:
    return any((c["outcome"] or {}).get("status") == "done" for c in sent(run_dir, module, "on"))


async def test_answers_lost_by_a_kill_are_asked_again_and_nothing_runs_twice(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port, hub_id = "sys-answers", mosquitto.port, "hub-sys-answers"
    config = write_hub(tmp_path / "hub", port, tmp_path / "bench" / "script.yaml", hub=hub_id)
    write_bench(tmp_path / "bench", unit, port)
    write_script(tmp_path / "bench", unit, text=SCRIPT.format(unit=unit))
    data_dir = tmp_path / "hub" / "data"
    hold = {"LABEDGE_HUB_DEFERRED_SAVE_S": "600"}
    async with probe("127.0.0.1", port, pattern="lab/#") as found:
        hub = spawn(["-v", "hub", "run", "--config", str(config)], tmp_path / "hub.log", env=hold)
        try:
            await found.wait_for(lambda: (found.last("lab/hub/$state") or {}).get("online"), 30, "the hub")
            with bench(tmp_path, unit, port) as (bench_dir, unit_proc):
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "running", 60,
                                     "the run")
                run_id = last_state(found, hub_id)["run_id"]
                run_dir = data_dir / "runs" / run_id
                await found.wait_for(lambda: answered(run_dir, "heater") and answered(run_dir, "aeration"),
                                     30, "both answers recorded by the hub")
                os.kill(hub.pid, signal.SIGKILL)
                hub.wait()
                killed_at = time.monotonic()
                ids = {m: str(sent(run_dir, m, "on")[0]["effect_id"]) for m in ("heater", "aeration")}
                state = json.loads((data_dir / "controller" / "state.json").read_text())["snapshot"]
                in_flight = {str(r["command"]["effect_id"]) for r in state["runs"] if r.get("command")}
                assert in_flight == set(ids.values())  # the kill came before the answers were saved
                assert rising_edges(bench_dir, "heater") == 1 and rising_edges(bench_dir, "aeration") == 1

                hub = spawn(["-v", "hub", "run", "--config", str(config)], tmp_path / "hub-2.log")

                def resumed() -> bool:
                    return any(m.topic == "lab/hub/experiment/state" and m.at > killed_at
                               and m.payload.get("hub") == hub_id and m.payload.get("resumed")
                               and m.payload.get("state") == "running" for m in found.messages)

                await found.wait_for(resumed, 30, "the run resumed")
                assert last_state(found, hub_id)["run_id"] == run_id
                logs = {"heated once", "aerated once"}
                await found.wait_for(
                    lambda: logs <= {e.get("message") for e in found.on("lab/hub/experiment/event")
                                     if isinstance(e, dict) and e.get("hub") == hub_id}, 30,
                    "both sequences finished")
                pins = read_pin_log(bench_dir / "pins.log")
                fired = last_state(found, hub_id)["fired"]
                stop(unit_proc)
        finally:
            assert stop(hub) == 0
    for module, pin in (("heater", "GPIO22"), ("aeration", "GPIO27")):
        # Asked again with the same id after the restart, carried out once, then switched off.
        resent = [c for c in sent(run_dir, module, "on") if c["effect_id"] == ids[module]]
        assert len(resent) >= 2, f"{module}: the command in flight was not re-sent: {resent}"
        assert {str(c["effect_id"]) for c in sent(run_dir, module, "on")
                if c.get("origin") == f"task:{'heat' if module == 'heater' else 'aerate'}"} == {ids[module]}
        assert rising_edges(bench_dir, module) == 1, module
        assert pins[pin][-1][1] == 0.0, module
    assert fired["heat"] == 1 and fired["aerate"] == 1
