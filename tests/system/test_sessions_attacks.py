"""Sessions on a real hub attacked from outside: a second hub, a moved-aside log, a queued press, odd ids.

Real Mosquitto, `labedge hub run` processes and an in-process unit on mock pins,
everything seen over MQTT or on disk, as a user would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.hub.sessions.system_rig import caller, hub_config, running_hub, session_of
from tests.rig import probe
from tests.system.hub_rig import exited, start_hub
from tests.system.inproc import running_unit
from tests.system.processes import stop
from tests.system.test_sessions import START_PIN, press, unit_dir

pytestmark = pytest.mark.system


async def test_a_second_hub_on_the_same_data_folder_is_refused_and_changes_nothing(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-two", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(unit_dir(tmp_path), unit, port):
        async with running_hub(tmp_path, port, "hub-ses-two"):
            await hub.until_answering()
            started = await hub.call("session.start", {"unit": unit})
            session_id = started["result"]["session"]["id"]
            log_file = tmp_path / "hub" / "data" / "session_log.json"
            before = log_file.read_bytes()
            second = start_hub(hub_config(tmp_path), tmp_path / "hub-second.log")
            try:
                code = await exited(second, 30)
            finally:
                stop(second)
            output = (tmp_path / "hub-second.log").read_text()
            assert code == 2 and "Traceback" not in output, output
            assert log_file.read_bytes() == before, "the second hub never touched the session log"
            checked = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "labedge", "hub", "run", "--config",
                                 str(hub_config(tmp_path)), "--check"], capture_output=True, text=True,
                timeout=60)
            assert checked.returncode == 0 and "session log: 1 sessions" in checked.stdout, checked.stderr
            shown = await hub.call("session.show", {"unit": unit})
            assert shown["result"]["session"]["id"] == session_id
            assert shown["result"]["session"]["state"] == "open", "the first hub goes on"


async def test_after_the_log_is_moved_aside_the_units_stale_retained_session_is_cleared(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-aside", mosquitto.port
    topic = f"lab/hub/sessions/{unit}"
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(unit_dir(tmp_path), unit, port):
        async with running_hub(tmp_path, port, "hub-ses-aside"):
            await hub.until_answering()
            await hub.call("session.start", {"unit": unit})
            await found.wait_for(lambda: session_of(found, unit).get("state") == "open", 10, "retained open")
        log_file = tmp_path / "hub" / "data" / "session_log.json"
        log_file.rename(log_file.with_name(log_file.name + ".damaged"))  # the documented recovery
        # The first hub cleared the topic too (before its session began): only what comes now counts.
        seen_before = len(found.messages)
        async with running_hub(tmp_path, port, "hub-ses-aside", "hub-2.log"):
            await hub.until_answering()
            await found.wait_for(lambda: any(m.topic == topic and m.payload is None
                                             for m in found.messages[seen_before:]), 15,
                                 "the stale one cleared")
            async with probe("127.0.0.1", port, pattern=topic) as late:  # a new subscriber sees no session
                await asyncio.sleep(0.5)
                assert late.on(topic) == [], late.on(topic)
            opened = await hub.call("session.start", {"unit": unit})
            assert opened["status"] == "done", opened
            await found.wait_for(lambda: session_of(found, unit).get("id") ==
                                 opened["result"]["session"]["id"], 10, "the new session retained")


async def test_a_press_queued_while_the_hub_was_down_starts_at_the_press_time(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    unit, port = "ses-queued", mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(unit_dir(tmp_path), unit, port) as rig:
        async with running_hub(tmp_path, port, "hub-ses-queued"):  # the hub's broker session exists
            await hub.until_answering()
        await press(rig, START_PIN)  # the hub is down: the broker queues the press for it
        pressed = await found.wait_for(lambda: found.last(f"lab/{unit}/$button"), 10, "the press")
        await asyncio.sleep(1.2)  # the hub comes back visibly later than the press
        async with running_hub(tmp_path, port, "hub-ses-queued", "hub-2.log"):
            opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                          and session_of(found, unit), 30, "the queued press carried out")
            assert opened["started_at"] == pressed["ts"], (opened, pressed)
            await hub.until_answering()
            shown = await hub.call("session.show", {"unit": unit})
            assert shown["result"]["events"][0]["kind"] == "START"


async def test_button_presses_on_odd_unit_topics_start_nothing(tmp_path: Path,
                                                               mosquitto: MosquittoProcess) -> None:
    port = mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_hub(tmp_path, port, "hub-ses-odd"):
        await hub.until_answering()
        payload = b'{"button": "start", "action": "pressed", "ts": "2026-03-01T12:00:00.000Z"}'
        for unit in ("Bench-1", "bench 1", "b\u00e9nch", "hub", "-x", "x" * 33, "a\u202eb", "%2e%2e", "$sys"):
            await hub.client.publish(f"lab/{unit}/$button", payload, qos=1)
        await hub.client.publish("lab/a/b/$button", payload, qos=1)
        await hub.client.publish("lab//$button", payload, qos=1)
        await hub.client.publish("lab/ok-unit/$button", payload.replace(b'"2026-03-01T12:00:00.000Z"', b"5"),
                                 qos=1)
        await hub.client.publish("lab/ok-unit/$button", payload, qos=1)  # the one good press, sent last
        await found.wait_for(lambda: session_of(found, "ok-unit").get("state") == "open", 15,
                             "the good press")
        listed = await hub.call("session.list", {})
        assert [s["unit"] for s in listed["result"]["sessions"]] == ["ok-unit"], listed
