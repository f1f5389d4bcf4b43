"""supervisord runs the generated unit program: RUNNING under supervisorctl; a stop leaves outputs off.

The unit runs as cloud-init would leave it: its files written from user-data,
its credentials on a broker locked down by the generated hub files, its
instruments simulated and its GPIO pins mock ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labedge.cli import main
from provisioning.inventory import HUB_ACCOUNT
from provisioning.supervisor_status import SupervisorUnreachable, process_states
from tests.provisioning.broker_clients import Client
from tests.provisioning.conftest import Hub
from tests.provisioning.test_cloud_init import apply_write_files
from tests.system.processes import simulators

SUPERVISORD = """\
[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
nodaemon=true

[unix_http_server]
file={dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[include]
files = {program}
"""


def supervisorctl(conf: Path, *args: str) -> str:
    tool = str(Path(sys.executable).with_name("supervisorctl"))
    return subprocess.run([tool, "-c", str(conf), *args], capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def supervised_unit(hub: Hub, tmp_path: Path) -> Iterator[Path]:
    """bench-a's bundle applied to this folder and its program under a supervisord of the test's own."""
    assert main(["provision", "unit", "bench-a", "--inventory", str(tmp_path / "fleet.yaml"),
                 "--out", str(hub.out)]) == 0
    hub.proc.send_signal(signal.SIGHUP)  # the broker learns the new password
    apply_write_files(hub.out / "bench-a" / "user-data")
    (tmp_path / "log").mkdir()  # the bundle's runcmd makes these on the Pi
    (tmp_path / "data").mkdir()
    sup = tmp_path / "supervisor"
    sup.mkdir()
    conf = sup / "supervisord.conf"
    conf.write_text(SUPERVISORD.format(dir=sup, program=hub.out / "bench-a" / "labedge-unit.conf"))
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}
    with simulators(tmp_path, {"ph1": "ph"}):
        supervisord = str(Path(sys.executable).with_name("supervisord"))
        proc = subprocess.Popen([supervisord, "-c", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            yield conf
        finally:
            proc.terminate()
            proc.wait(60)


def wait_state(conf: Path, state: str, timeout: float = 30.0, program: str = "labedge-unit") -> None:
    """Until supervisord reports `program` in `state`, read over its XML-RPC interface."""
    deadline = time.monotonic() + timeout
    url = f"unix://{conf.parent}/supervisor.sock"
    seen = None
    while time.monotonic() < deadline:
        with contextlib.suppress(SupervisorUnreachable):
            seen = process_states(url).get(program)
        if seen == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"{program} is {seen}, not {state}, after {timeout:g} s")


def call(hub_client: Client, topic: str, reply_topic: str, cmd: str, args: dict[str, object],
         lease: str | None = None) -> dict[str, object]:
    """Send one command as the hub and return its final reply."""
    command_id = str(uuid.uuid4())
    command = {"id": command_id, "cmd": cmd, "args": args, "lease": lease}
    hub_client.publish(topic, json.dumps(command).encode())

    def final() -> dict[str, object] | None:
        for t, raw in hub_client.messages:
            if t == reply_topic:
                reply = json.loads(raw)
                if reply.get("id") == command_id and reply.get("status") in ("done", "failed", "rejected"):
                    return reply  # type: ignore[no-any-return]
        return None

    hub_client.wait(lambda: final() is not None, f"the reply to {cmd}")
    reply = final()
    assert reply is not None
    return reply


def retained_states(hub: Hub, name: str) -> dict[str, dict[str, object]]:
    """Module -> retained state of bench-a, as a newly connected client reads them."""
    reader = hub.client(HUB_ACCOUNT, name)
    try:
        reader.subscribe("lab/bench-a/+/state")
        reader.wait(lambda: {t for t in reader.topics()} >= {"lab/bench-a/heater/state",
                                                            "lab/bench-a/aeration/state"},
                    "bench-a's retained module states")
        return {t.split("/")[2]: json.loads(raw) for t, raw in reader.messages}
    finally:
        reader.close()


def test_supervisord_runs_the_unit_and_a_stop_leaves_every_output_off(
        hub: Hub, supervised_unit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = supervised_unit
    hub_client = hub.client(HUB_ACCOUNT, "labedge-hub-test")
    try:
        hub_client.subscribe("lab/bench-a/#")
        hub_client.wait(lambda: any(t == "lab/bench-a/$state" and json.loads(raw)["state"] == "ready"
                                    for t, raw in hub_client.messages), "bench-a ready", timeout=30)
        # supervisord calls it RUNNING once it has lived startsecs (5 s) without exiting.
        wait_state(conf, "RUNNING")
        assert "RUNNING" in supervisorctl(conf, "status", "labedge-unit")
        url = f"unix://{conf.parent}/supervisor.sock"
        assert main(["lab", "status", "--url", url]) == 0
        assert re.search(r"^labedge-unit\s+RUNNING\s+pid \d+", capsys.readouterr().out, re.M)
        lease = call(hub_client, "lab/bench-a/$cmd", "lab/bench-a/$reply", "lease.acquire",
                     {"holder": "test", "ttl_s": 60})
        assert lease["status"] == "done", lease
        token = lease["result"]["token"]  # type: ignore[index]
        for module in ("heater", "aeration"):
            reply = call(hub_client, f"lab/bench-a/{module}/cmd", f"lab/bench-a/{module}/reply", "on", {},
                         token)
            assert reply["status"] == "done", reply
        states = retained_states(hub, "reader-before")
        assert states["heater"]["outputs"]["on"] is True  # type: ignore[index]
        assert states["aeration"]["outputs"]["on"] is True  # type: ignore[index]
        assert "stopped" in supervisorctl(conf, "stop", "labedge-unit")
        assert "STOPPED" in supervisorctl(conf, "status", "labedge-unit")
        assert main(["lab", "status", "--url", url]) == 1
        assert re.search(r"^labedge-unit\s+STOPPED", capsys.readouterr().out, re.M)
        states = retained_states(hub, "reader-after")
        assert states["heater"]["outputs"]["on"] is False  # type: ignore[index]
        assert states["aeration"]["outputs"]["on"] is False  # type: ignore[index]
        assert "every output is off" in (tmp_path / "log" / "unit.log").read_text()
    finally:
        hub_client.close()


def test_status_without_a_supervisord_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "status", "--dir", str(tmp_path)]) == 2
    assert f"no supervisord answers at unix://{tmp_path}/supervisor.sock" in capsys.readouterr().err
