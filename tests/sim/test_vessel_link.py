"""The vessel follows a real unit's mock GPIO outputs through their retained states on Mosquitto."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.unit_client import connected_client
from lecis.clock import SystemClock
from lecis.dcd_loader import load_dcd
from lecis.errors import SettingInvalid
from lecis.mqtt_session import SessionConfig
from provisioning.broker import MosquittoProcess
from sim.vessel import Vessel, VesselParams
from sim.vessel_link import OutputRole, VesselFollower, parse_roles, roles_for
from tests.edge.gpio_fixtures import ManualClock
from tests.system.inproc import running_unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dcd"


def test_roles_come_from_the_dcds_with_the_pump_flow() -> None:
    dcds = [load_dcd(EXAMPLES / f"{name}.yaml") for name in ("aeration", "base_pump", "heater", "ph1")]
    assert roles_for(dcds) == [OutputRole("aeration", "aeration"), OutputRole("base_pump", "base", 0.85),
                               OutputRole("heater", "heater")]
    assert roles_for(dcds, {"heater": "aeration"}) == [OutputRole("heater", "aeration")]


def test_role_list_errors_name_the_item() -> None:
    assert parse_roles("aeration=aeration, pump2=base") == {"aeration": "aeration", "pump2": "base"}
    with pytest.raises(SettingInvalid, match="'pump2=acid' is not MODULE=ROLE"):
        parse_roles("aeration=aeration,pump2=acid")


def test_bad_or_foreign_states_are_ignored() -> None:
    vessel = Vessel(ManualClock(), VesselParams())
    follower = VesselFollower(vessel, "bench-1", [OutputRole("aeration", "aeration")])
    follower.on_message("lab/bench-1/aeration/state", b'{"lecis": "IDLE"}')
    follower.on_message("lab/bench-2/aeration/state", b'{"lecis": "IDLE", "control": "REMOTE", '
                        b'"outputs": {"on": true}, "error": null, "ts": "2026-01-01T00:00:00.000Z"}')
    assert not vessel.state.outputs["aeration"].on
    follower.on_message("lab/bench-1/aeration/state", b'{"lecis": "IDLE", "control": "REMOTE", '
                        b'"outputs": {"on": true}, "error": null, "ts": "2026-01-01T00:00:00.000Z"}')
    assert vessel.state.outputs["aeration"].on


AERATION = "module: aeration\ndriver: gpio.switch\npin: 27\nmax_on_s: 3600\non_controller_loss: hold\n"
BASE = ("module: base_pump\ndriver: gpio.pump\npin: 17\nmax_on_s: 30\nml_per_s: 0.85\nmax_ml_per_hour: 50\n"
        'on_controller_loss: "off"\n')
HEATER = 'module: heater\ndriver: gpio.switch\npin: 22\nmax_on_s: 900\non_controller_loss: "off"\n'


async def test_mock_gpio_outputs_act_on_the_water(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    vessel = Vessel(SystemClock(), VesselParams())
    dcds = {"aeration": AERATION, "base_pump": BASE, "heater": HEATER}
    async with running_unit(tmp_path, "bench-1", mosquitto.port, dcds) as unit:
        roles = roles_for(unit.unit.config.modules)
        follower = VesselFollower(vessel, "bench-1", roles)
        session = follower.session(SessionConfig(port=mosquitto.port, client_id="vessel-test"))

        async def applied(module: str, on: bool) -> None:
            async with asyncio.timeout(10):
                while follower.applied.get(module, (False, 1.0))[0] != on:
                    follower.changed.clear()
                    await follower.changed.wait()

        async with session, connected_client("127.0.0.1", mosquitto.port, "bench-1") as ctl:
            assert (await ctl.acquire())["status"] == "done"
            assert (await ctl.call("aeration", "on"))["status"] == "done"
            await applied("aeration", True)
            assert vessel.state.outputs["aeration"].on and vessel.kla_per_h() == VesselParams().kla_per_h
            assert (await ctl.call("heater", "on"))["status"] == "done"
            await applied("heater", True)
            assert vessel.heater_w() == VesselParams().heater_w
            ph = vessel.state.ph
            reply = await ctl.call("base_pump", "dose", {"ml": 1.7})
            assert reply["status"] == "done", reply
            await applied("base_pump", False)
            # The vessel saw the pump on for the dose's 2 s at the DCD's flow: about 1.7 ml.
            assert vessel.state.base_ml == pytest.approx(1.7, abs=0.15)
            assert vessel.state.ph - ph == pytest.approx(1.7 * vessel.ph_per_ml(), abs=0.01)
            assert (await ctl.call("aeration", "off"))["status"] == "done"
            await applied("aeration", False)
            assert vessel.kla_per_h() == 0.0
