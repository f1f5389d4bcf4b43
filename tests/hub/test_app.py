"""The hub's lifespan in this process: real Mosquitto, a real unit on mock pins, the recorder's files."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub, HubDataDirBusy
from hub.config import HubConfig
from hub.script.errors import ScriptError
from lecis.unit_config import BrokerConfig
from provisioning.broker import MosquittoProcess
from tests.rig import Probe, probe
from tests.system.inproc import running_unit

SCRIPT = """\
experiment: valve test
units:
  {unit}: u/unit.yaml
tasks:
  - name: open
    at: 0s
    do:
      - {unit}/valve1: on
      - log: "valve open"
  - name: close
    at: {close}
    do:
      - {unit}/valve1: off
"""


def write_script(tmp: Path, unit: str, close: str = "1h") -> Path:
    path = tmp / "script.yaml"
    path.write_text(SCRIPT.format(unit=unit, close=close))
    return path


def config(tmp: Path, port: int, script: Path | None, hub: str) -> HubConfig:
    return HubConfig(hub, str(tmp / "hub.yaml"), BrokerConfig(port=port, keepalive_s=2), tmp / "hub",
                     script, lease_ttl_s=6.0, command_timeout_s=5.0)


@contextlib.asynccontextmanager
async def unit_and_watch(tmp: Path, name: str, port: int) -> AsyncIterator[tuple[Any, Probe]]:
    (tmp / "u").mkdir(exist_ok=True)
    async with running_unit(tmp / "u", name, port) as unit, probe("127.0.0.1", port) as found:
        yield unit, found


def state(found: Probe, hub: str) -> dict[str, Any]:
    """The last experiment state of `hub` (the broker is shared with other tests' hubs)."""
    states = [s for s in found.on("lab/hub/experiment/state") if isinstance(s, dict) and s.get("hub") == hub]
    return states[-1] if states else {}


async def test_a_script_runs_its_commands_and_the_files_record_them(tmp_path: Path,
                                                                     mosquitto: MosquittoProcess) -> None:
    async with unit_and_watch(tmp_path, "app-1", mosquitto.port) as (unit, found):
        async with Hub(config(tmp_path, mosquitto.port, write_script(tmp_path, "app-1"), "hub-a1")) as hub:
            await found.wait_for(lambda: state(found, "hub-a1").get("state") == "running", 15, "the run")
            await found.wait_for(lambda: unit.pin(27).state == 1, 10, "valve1 on")
            run_id = state(found, "hub-a1")["run_id"]
            assert state(found, "hub-a1")["units"]["app-1"]["lease"] is True
            await found.wait_for(lambda: any(e["message"] == "valve open" for e in found.on(
                "lab/hub/experiment/event")), 10, "the log line")
            events = found.on("lab/hub/experiment/event")
            assert hub.recorder is not None
            await hub.recorder.flush()
    run = tmp_path / "hub" / "runs" / run_id
    commands = [json.loads(line) for path in sorted(run.glob("commands.*.jsonl"))
                for line in path.read_text().splitlines()]
    answered = [c for c in commands if c["outcome"] is not None]
    assert [(c["module"], c["cmd"], c["outcome"]["status"]) for c in answered] == [("valve1", "on", "done")]
    assert events


async def test_an_invalid_script_starts_nothing(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    (tmp_path / "u").mkdir()
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT.format(unit="app-2", close="1h").replace("valve1: off", "valve1: of"))
    with pytest.raises(ScriptError) as caught:
        async with Hub(config(tmp_path, mosquitto.port, script, "hub-a2")):
            pass
    assert not (tmp_path / "hub").exists()
    assert caught.value.problems


async def test_a_second_hub_on_the_same_data_dir_is_refused(tmp_path: Path,
                                                            mosquitto: MosquittoProcess) -> None:
    async with Hub(config(tmp_path, mosquitto.port, None, "hub-a3")):
        with pytest.raises(HubDataDirBusy) as caught:
            async with Hub(config(tmp_path, mosquitto.port, None, "hub-a4")):
                pass
    assert "in use by another hub" in str(caught.value) and "hub-a3" in str(caught.value)


async def test_without_a_script_the_hub_records_and_says_idle(tmp_path: Path,
                                                              mosquitto: MosquittoProcess) -> None:
    async with unit_and_watch(tmp_path, "app-5", mosquitto.port) as (_, found):
        async with Hub(config(tmp_path, mosquitto.port, None, "hub-a5")) as hub:
            await found.wait_for(lambda: state(found, "hub-a5").get("state") == "idle", 10, "idle state")
            await asyncio.sleep(0)
            assert hub.recorder is not None
            await hub.recorder.flush()
            assert hub.recorder.state("app-5", "$birth") is not None


async def command(found: Probe, port: int, command_id: str, cmd: str, args: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish("lab/hub/$cmd", json.dumps({"id": command_id, "cmd": cmd, "args": args or {}}),
                             qos=1)

    def final() -> dict[str, Any] | None:
        return next((r for r in found.on("lab/hub/$reply") if r["id"] == command_id
                     and r["status"] in ("done", "failed", "rejected")), None)
    reply: dict[str, Any] = await found.wait_for(final, 10, f"the reply to {cmd}")
    return reply


async def test_pause_resume_and_stop_over_mqtt(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    port = mosquitto.port
    async with unit_and_watch(tmp_path, "app-6", port) as (unit, found):
        async with Hub(config(tmp_path, port, write_script(tmp_path, "app-6"), "hub-a6")):
            await found.wait_for(lambda: state(found, "hub-a6").get("state") == "running", 15, "the run")
            assert (await command(found, port, "p1", "experiment.pause"))["result"]["state"] == "paused"
            again = await command(found, port, "p2", "experiment.pause")
            assert again["status"] == "rejected" and again["error"]["kind"] == "state"
            assert (await command(found, port, "p3", "experiment.resume"))["result"]["state"] == "running"
            versions = await command(found, port, "p4", "script.versions")
            assert [v["version"] for v in versions["result"]["versions"]] == [1]
            stopped = await command(found, port, "p5", "experiment.stop", {"reason": "enough"})
            assert stopped["result"]["state"] == "stopped"
            await found.wait_for(lambda: unit.pin(27).state == 0, 10, "valve1 off: the stop turned it off")
            await found.wait_for(lambda: state(found, "hub-a6").get("state") == "stopped", 10, "stopped")


async def test_a_birth_that_does_not_fit_the_script_raises_an_alarm(tmp_path: Path,
                                                                     mosquitto: MosquittoProcess) -> None:
    """The script was checked against unit files that offer valve1; the real unit has only a pump."""
    from tests.system.inproc import PUMP, VALVE, write_equipment_unit

    (tmp_path / "u").mkdir()
    write_equipment_unit(tmp_path / "u", "app-7", mosquitto.port, {"pump1": PUMP, "valve1": VALVE})
    script = write_script(tmp_path, "app-7")
    (tmp_path / "real").mkdir()
    async with running_unit(tmp_path / "real", "app-7", mosquitto.port, {"pump1": PUMP}), \
            probe("127.0.0.1", mosquitto.port, pattern="lab/hub/experiment/event") as found:
        async with Hub(config(tmp_path, mosquitto.port, script, "hub-a7")):

            def mismatch() -> dict[str, Any] | None:
                return next((e for e in found.on("lab/hub/experiment/event")
                             if e.get("hub") == "hub-a7" and e["code"] == "script_birth_mismatch"), None)
            alarm = await found.wait_for(mismatch, 15, "the alarm")
    assert alarm["level"] == "alarm"
    assert f"{script}:8:9: unit app-7 has no module 'valve1'; the modules of app-7 are: pump1" \
        in alarm["message"]
