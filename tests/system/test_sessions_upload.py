"""The session log with the uploader in a real hub process: a button-started session's files land verified.

The hub runs with `storage:` against fake-gcs-server (tests/hub/upload/emulators.py);
the unit's buttons start and stop the session; the session is `closed` only
once every file of the watched folder and of the recorder is in the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioning.broker import MosquittoProcess
from tests.hub.sessions.system_rig import caller, session_of
from tests.hub.upload.emulators import BUCKET, Emulator, FakeGcsServer, running
from tests.rig import probe
from tests.system.hub_rig import write_hub
from tests.system.inproc import running_unit
from tests.system.processes import spawn, stop
from tests.system.test_sessions import START_PIN, STOP_PIN, press, unit_dir

pytestmark = pytest.mark.system


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[Emulator]:
    yield from running(FakeGcsServer, tmp_path / "fake-gcs")


def objects(emulator: Emulator, prefix: str) -> dict[str, dict[str, Any]]:
    url = f"{emulator.url}/storage/v1/b/{BUCKET}/o?prefix={urllib.parse.quote(prefix)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return {o["name"]: o for o in json.loads(answer.read()).get("items", [])}


async def test_a_button_session_closes_once_its_files_are_in_the_bucket(
        tmp_path: Path, mosquitto: MosquittoProcess, bucket: Emulator) -> None:
    unit, port = "ses-up", mosquitto.port
    watched = tmp_path / "instrument-out"
    watched.mkdir()
    config = write_hub(tmp_path / "hub", port, None, hub="hub-ses-up", extra=(
        f"storage: {{bucket: {BUCKET}, prefix: lab1}}\nupload: {{scan_s: 0.2, stable_s: 0.2}}\n"
        f"watch:\n  {unit}:\n    - {{path: {watched}, include: ['*.csv']}}\n"))
    hub_proc = spawn(["-v", "hub", "run", "--config", str(config)], tmp_path / "hub.log",
                     env={"STORAGE_EMULATOR_HOST": bucket.url})
    try:
        async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub:
            await hub.until_answering()
            async with running_unit(unit_dir(tmp_path), unit, port) as rig:
                await press(rig, START_PIN)
                opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                              and session_of(found, unit), 15, "the session opened")
                (watched / "a.csv").write_text("t,v\n1,2\n")
                (watched / "skip.tmp").write_text("not watched")
                await found.wait_for(lambda: session_of(found, unit)["upload"]["files_done"] >= 1, 30,
                                     "a.csv uploaded during the session")
                (watched / "a.csv").write_text("t,v\n1,2\n3,4\n")  # changed: the final version must land
                (watched / "b.csv").write_text("t,v\n5,6\n")
                await press(rig, STOP_PIN)
                closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                              and s, 60, "the session closed, verified")
        assert closed["id"] == opened["id"]
        prefix = f"lab1/{unit}/{opened['id']}/"
        landed = objects(bucket, prefix)
        for name in ("a.csv", "b.csv"):
            local = hashlib.md5((watched / name).read_bytes()).digest()
            assert base64.b64decode(landed[prefix + name]["md5Hash"]) == local, name
        assert prefix + "skip.tmp" not in landed
        assert any(n.startswith(prefix + "recorded/") for n in landed), "the recorder's files too"
    finally:
        stop(hub_proc)


async def test_a_hub_killed_while_closing_finishes_the_transfer_after_the_restart(
        tmp_path: Path, mosquitto: MosquittoProcess, bucket: Emulator) -> None:
    unit, port = "ses-up-kill", mosquitto.port
    watched = tmp_path / "instrument-out"
    watched.mkdir()
    config = write_hub(tmp_path / "hub", port, None, hub="hub-ses-up-kill", extra=(
        f"storage: {{bucket: {BUCKET}, prefix: lab1}}\n"
        "upload: {scan_s: 0.2, stable_s: 0.2, final_timeout_s: 1, timeout_s: 2, retry_max_s: 1}\n"
        f"watch:\n  {unit}:\n    - {{path: {watched}}}\n"))
    env = {"STORAGE_EMULATOR_HOST": bucket.url}
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(unit_dir(tmp_path), unit, port):
        first = spawn(["-v", "hub", "run", "--config", str(config)], tmp_path / "hub.log", env=env)
        try:
            await hub.until_answering()
            started = await hub.call("session.start", {"unit": unit})
            session_id = started["result"]["session"]["id"]
            bucket.stop()  # the bucket goes away before anything landed
            (watched / "late.csv").write_text("t,v\n1,2\n")
            stopped = await hub.call("session.stop", {"unit": unit})
            assert stopped["result"]["session"]["state"] == "closing"
            waiting = await found.wait_for(lambda: (s := session_of(found, unit)).get("reason") and
                                           "late.csv" in s["reason"] and s, 60, "the transfer waiting")
            assert waiting["state"] == "closing" and "not verified" in waiting["reason"], waiting["reason"]
        finally:
            stop(first, signal.SIGKILL)
        bucket.start()
        second = spawn(["-v", "hub", "run", "--config", str(config)], tmp_path / "hub-2.log", env=env)
        try:
            closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                          and s.get("id") == session_id and s, 60, "closed after the restart")
            assert closed["reason"] is None
            shown = await hub.call("session.show", {"unit": unit})
            kinds = [e["kind"] for e in shown["result"]["events"]]
            assert kinds[:2] == ["START", "END"] and "RECOVERED" in kinds and kinds[-1] == "VERIFIED", kinds
            landed = objects(bucket, f"lab1/{unit}/{session_id}/")
            assert f"lab1/{unit}/{session_id}/late.csv" in landed
        finally:
            stop(second)
