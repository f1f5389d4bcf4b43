"""Sessions on a real hub process and real Mosquitto: a unit's buttons, hub commands, the CLI, a restart.

The unit runs in the test's loop on mock pins (its buttons are pressed by driving
those pins); the hub is `labedge hub run`; everything is seen over MQTT or
through `labedge session ...`, as a user would.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from edge.unit_extras import ButtonsAndLed
from provisioning.broker import MosquittoProcess
from tests.hub.sessions.system_rig import caller, cli, hub_config, running_hub, session_of
from tests.rig import probe
from tests.system.hub_rig import exited, start_hub, write_hub
from tests.system.inproc import RunningUnit, running_unit
from tests.system.processes import stop

pytestmark = pytest.mark.system

START_PIN, STOP_PIN = 5, 6


def unit_dir(tmp: Path) -> Path:
    (tmp / "unit").mkdir(exist_ok=True)
    return tmp / "unit"


async def press(rig: RunningUnit, pin: int) -> None:
    """A short press and release, each longer than the 0.02 s debounce; far shorter than the 0.5 s hold."""
    rig.pin(pin).drive_low()
    await asyncio.sleep(0.1)
    rig.pin(pin).drive_high()
    await asyncio.sleep(0.1)


async def test_buttons_start_and_stop_a_session_and_a_refused_press_blinks(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-btn", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, \
            running_hub(tmp_path, port, "hub-ses-btn"), caller(port, found) as hub:
        await hub.until_answering()
        async with running_unit(unit_dir(tmp_path), unit, port) as rig:
            extras = rig.unit.extras[0]
            assert isinstance(extras, ButtonsAndLed) and extras.led is not None
            led = extras.led
            await found.wait_for(lambda: (r := (hub.found.last("lab/hub/$state") or {})) and r.get("online"),
                                 10, "the hub online")
            await press(rig, START_PIN)
            opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                          and session_of(found, unit), 15, "the session opened by the button")
            assert opened["started_by"] == "button" and opened["unit"] == unit
            assert opened["started_at"].endswith("Z") and len(opened["id"]) == 36

            await press(rig, START_PIN)  # a second start while it is open: refused, blinked
            await found.wait_for(lambda: led.refusals == 1, 15, "the refusal blink on the unit's LED")
            refusal = [e for e in found.on("lab/hub/experiment/event") if e.get("code") == "session_refused"]
            assert refusal and opened["id"] in refusal[-1]["message"]
            assert session_of(found, unit)["id"] == opened["id"], "still the one open session"

            await press(rig, STOP_PIN)
            closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                          and s, 15, "the session closed")
            assert closed["id"] == opened["id"] and closed["ended_by"] == "button"
            states = [s["state"] for s in found.on(f"lab/hub/sessions/{unit}")
                      if s and s.get("id") == opened["id"]]  # None: cleared before the unit's first session
            assert states[0] == "open" and "closing" in states and states[-1] == "closed"

            await press(rig, STOP_PIN)  # nothing open: refused, blinked
            await found.wait_for(lambda: led.refusals == 2, 15, "the second refusal blink")
            shown = await hub.call("session.show", {"unit": unit})
            kinds = [e["kind"] for e in shown["result"]["events"]]
            assert kinds == ["START", "END", "VERIFIED"]
            assert "no bucket configured" in shown["result"]["events"][-1]["message"]


async def test_refusals_through_mqtt_and_the_cli_name_the_open_session(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-cli", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, \
            running_hub(tmp_path, port, "hub-ses-cli"), caller(port, found) as hub:
        await hub.until_answering()
        async with running_unit(unit_dir(tmp_path), unit, port):
            config = str(hub_config(tmp_path))
            started = await cli("start", unit, "--config", config, "--experiment", "trial 3", "--user", "ana")
            assert started.returncode == 0, started.stderr
            session_id = started.stdout.split()[1]
            assert f"session {session_id} of {unit} open" in started.stdout

            again = await cli("start", unit, "--config", config)
            assert again.returncode == 1
            assert f"already has an open session, {session_id}" in again.stderr

            over_mqtt = await hub.call("session.start", {"unit": unit})
            assert over_mqtt["status"] == "rejected" and over_mqtt["error"]["kind"] == "state"
            assert session_id in over_mqtt["error"]["message"]
            assert over_mqtt["result"]["open_session"]["id"] == session_id

            wrong = await hub.call("session.stop", {"unit": unit, "session_id": "not-the-open-one"})
            assert wrong["status"] == "rejected" and session_id in wrong["error"]["message"]

            listed = await cli("list", unit, "--config", config)
            assert listed.returncode == 0 and session_id in listed.stdout and "open" in listed.stdout

            stopped = await cli("stop", unit, "--config", config, "--session", session_id)
            assert stopped.returncode == 0, stopped.stderr
            followed = await cli("show", unit, "--config", config, "--follow", "--timeout", "10")
            assert followed.returncode == 0, followed.stderr
            assert "[##############################] 100%" in followed.stdout
            assert f"session {session_id} closed" in followed.stdout
            assert "experiment: trial 3" in followed.stdout and "user:       ana" in followed.stdout

            none_open = await cli("stop", unit, "--config", config)
            assert none_open.returncode == 1 and f"unit {unit} has no open session" in none_open.stderr
            over_mqtt = await hub.call("session.stop", {"unit": unit})
            assert over_mqtt["status"] == "rejected" and over_mqtt["error"]["kind"] == "state"
            assert "has no open session" in over_mqtt["error"]["message"]


async def test_a_hub_killed_with_an_open_session_recovers_it(tmp_path: Path,
                                                             mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-kill", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(unit_dir(tmp_path), unit, port):
        async with running_hub(tmp_path, port, "hub-ses-kill") as proc:
            await hub.until_answering()
            started = await hub.call("session.start", {"unit": unit, "experiment": "long run"})
            session_id = started["result"]["session"]["id"]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        async with running_hub(tmp_path, port, "hub-ses-kill", "hub-2.log"):
            await hub.until_answering()
            shown = await hub.call("session.show", {"unit": unit})
            session = shown["result"]["session"]
            assert session["id"] == session_id and session["state"] == "open"
            assert [e["kind"] for e in shown["result"]["events"]] == ["START", "RECOVERED"]
            retained = await found.wait_for(lambda: (s := session_of(found, unit)).get("id") == session_id
                                            and s, 10, "the retained state")
            assert retained["state"] == "open"
            refused = await hub.call("session.start", {"unit": unit})
            assert refused["status"] == "rejected" and session_id in refused["error"]["message"]


async def test_a_corrupt_session_log_stops_the_hub_naming_the_file(tmp_path: Path,
                                                                    mosquitto: MosquittoProcess) -> None:
    config = write_hub(tmp_path / "hub", mosquitto.port, None, hub="hub-ses-corrupt")
    log_file = tmp_path / "hub" / "data" / "session_log.json"
    log_file.parent.mkdir(parents=True)
    log_file.write_text('{"sessions": {"1": {"id": "a", "unit": "b"')  # cut short
    proc = start_hub(config, tmp_path / "hub.log")
    code = await exited(proc, 30)
    output = (tmp_path / "hub.log").read_text()
    assert code == 2, output
    assert f"{log_file}: the session log cannot be read (not JSON" in output
    assert f"mv {log_file} {log_file}.damaged" in output
    assert log_file.read_text() == '{"sessions": {"1": {"id": "a", "unit": "b"', "left as it was"


HOSTILE = [
    ("session.start", {"unit": 5}, "unit", "must be a unit id"),
    ("session.start", {"unit": "Bench_1"}, "unit", "is not a unit id"),
    ("session.start", {"unit": "x" * 100_000}, "unit", "is not a unit id"),
    ("session.start", {"unit": "nobody-here"}, "unit", "is not known to this hub"),
    ("session.start", {"unit": "hub"}, "unit", "reserved"),
    ("session.start", {"unit": "{unit}", "experiment": 7}, "experiment", "must be a string"),
    ("session.start", {"unit": "{unit}", "experiment": "e" * 400_000}, "experiment", "1 to 200 characters"),
    ("session.start", {"unit": "{unit}", "experiment": "ok\ud800"}, None, ""),
    ("session.start", {"unit": "{unit}", "user": "ana\nroot"}, "user", "control"),
    ("session.start", {"unit": "{unit}", "user": "\u202eevil"}, None, ""),
    ("session.start", {"unit": "{unit}", "user": ["ana"]}, "user", "must be a string"),
    ("session.start", {"unit": "{unit}", "source": "button"}, "source", "source must be one of"),
    ("session.start", {"unit": "{unit}", "id": "mine"}, "id", "takes only"),
    ("session.stop", {"unit": "{unit}", "session_id": 5}, "session_id", "must be a string"),
    ("session.list", {"limit": 0}, "limit", "whole number"),
    ("session.list", {"limit": True}, "limit", "whole number"),
    ("session.list", {"limit": "5"}, "limit", "whole number"),
    ("session.show", {}, "unit", "needs unit or session_id"),
    ("session.show", {"session_id": "no-such-session"}, "session_id", "no session"),
]


async def test_hostile_session_commands_get_clear_rejections_and_store_nothing(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-bad", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, \
            running_hub(tmp_path, port, "hub-ses-bad"), caller(port, found) as hub:
        await hub.until_answering()
        async with running_unit(unit_dir(tmp_path), unit, port):
            await found.wait_for(lambda: found.last(f"lab/{unit}/$birth"), 10, "the unit's birth")
            for cmd, args, param, words in HOSTILE:
                args = {k: (v.format(unit=unit) if v == "{unit}" else v) for k, v in args.items()}
                reply = await hub.call(cmd, args)
                shown = (cmd, str(args)[:80], reply)
                assert reply["status"] == "rejected" and reply["error"]["kind"] == "validation", shown
                assert reply["error"]["message"], shown
                if param is not None:
                    assert reply["error"]["param"] == param and words in reply["error"]["message"], shown
            unknown = await hub.call("session.frobnicate", {"unit": unit})
            assert unknown["error"]["kind"] == "unknown_command"
            # A unit's button message that does not fit the contract starts nothing.
            await hub.client.publish(f"lab/{unit}/$button", b'{"button": "launch", "action": "pressed"}')
            await hub.client.publish(f"lab/{unit}/$button", b'{"button": "start", "action": "held", "ts": '
                                                             b'"2026-01-01T00:00:00.000Z"}')
            listed = await hub.call("session.list", {"unit": unit})
            assert listed["status"] == "done" and listed["result"]["sessions"] == []
            # The same press delivered twice (QoS 1 may): carried out once, no refusal.
            press_once = b'{"button": "start", "action": "pressed", "ts": "2026-01-01T00:00:01.000Z"}'
            await hub.client.publish(f"lab/{unit}/$button", press_once, qos=1)
            await hub.client.publish(f"lab/{unit}/$button", press_once, qos=1)
            opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                          and session_of(found, unit), 10, "the session of the press")
            stopped = await hub.call("session.stop", {"unit": unit, "session_id": opened["id"]})
            assert stopped["status"] == "done"
            listed = await hub.call("session.list", {"unit": unit})
            assert [s["started_by"] for s in listed["result"]["sessions"]] == ["button"]
            assert not [e for e in found.on("lab/hub/experiment/event") if e.get("code") == "session_refused"
                        and unit in e.get("message", "")]
            # And the hub still works for the next good command.
            good = await hub.call("session.start", {"unit": unit, "experiment": "après-midi ☕"})
            assert good["status"] == "done" and good["result"]["session"]["experiment"] == "après-midi ☕"


SESSION_SCRIPT = """\
experiment: session script test
units:
  {unit}: unit.yaml
tasks:
  - name: open
    at: 1s
    do:
      - session: {{start: {unit}, name: scripted trial}}
  - name: open_again
    at: 2s
    do:
      - session: {{start: {unit}}}
  - name: close
    at: 3s
    do:
      - session: {{stop: {unit}}}
"""


async def test_the_scripts_session_action_starts_and_stops_a_session(tmp_path: Path,
                                                                     mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-script", mosquitto.port
    folder = unit_dir(tmp_path)
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(folder, unit, port):
        script = folder / "script.yaml"
        script.write_text(SESSION_SCRIPT.format(unit=unit))
        config = write_hub(tmp_path / "hub", port, script, hub="hub-ses-script")
        proc = start_hub(config, tmp_path / "hub.log")
        try:
            closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                          and s, 30, "the scripted session closed")
            assert closed["started_by"] == "script" and closed["ended_by"] == "script"
            assert closed["experiment"] == "scripted trial"
            refused = [e for e in found.on("lab/hub/experiment/event") if e.get("code") == "session_refused"]
            assert refused and closed["id"] in refused[-1]["message"], "the second start was refused"
            shown = await hub.call("session.show", {"unit": unit})
            assert [e["kind"] for e in shown["result"]["events"]] == ["START", "END", "VERIFIED"]
        finally:
            stop(proc)
