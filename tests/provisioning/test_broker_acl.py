"""A real Mosquitto started with the files of `labedge provision hub`: each unit kept in its own topics."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labedge.cli import main
from provisioning.credentials import CredentialStore
from provisioning.inventory import HUB_ACCOUNT, MONITOR_ACCOUNT
from tests.provisioning.broker_clients import Client, Refused
from tests.provisioning.conftest import Hub


def test_unit_publishes_only_its_own_topics_and_never_commands(hub: Hub) -> None:
    watcher = hub.client(HUB_ACCOUNT, "labedge-hub-test")
    unit_a = hub.client("bench-a", "labedge-unit-bench-a")
    try:
        assert watcher.subscribe("lab/#") == 1
        unit_a.publish("lab/bench-b/ph1/data", b"forged reading")
        unit_a.publish("lab/bench-a/ph1/cmd", b"forged command")
        unit_a.publish("lab/bench-a/$cmd", b"forged unit command")
        unit_a.publish("lab/bench-a/ph1/data", b"real reading")
        # The broker forwards one client's messages in order: once the last one arrived, the three
        # refused ones would have arrived before it.
        watcher.wait(lambda: "lab/bench-a/ph1/data" in watcher.topics(), "bench-a's reading at the hub")
        assert watcher.messages == [("lab/bench-a/ph1/data", b"real reading")]
    finally:
        watcher.close()
        unit_a.close()


def test_unit_reads_only_its_own_commands_and_the_hub_commands_it(hub: Hub) -> None:
    unit_a = hub.client("bench-a", "labedge-unit-bench-a")
    hub_client = hub.client(HUB_ACCOUNT, "labedge-hub-test")
    monitor = hub.client(MONITOR_ACCOUNT, "monitor")
    try:
        assert unit_a.subscribe("lab/bench-a/+/cmd") == 1
        assert unit_a.subscribe("lab/bench-a/$cmd") == 1
        # Mosquitto 2.0 may grant these subscriptions; its ACL is applied to every delivery.
        assert unit_a.subscribe("lab/bench-b/+/cmd") in (1, 128)
        assert unit_a.subscribe("lab/bench-b/ph1/data") in (1, 128)
        # Each PUBACK comes once the broker routed or dropped the message (one thread): anything
        # routed to bench-a would be queued there before the hub's last command.
        monitor.publish("lab/bench-a/ph1/cmd", b"monitor may not command")
        hub_client.publish("lab/bench-b/ph1/cmd", b"for bench-b")
        hub_client.publish("lab/bench-b/ph1/data", b"bench-b's data")
        hub_client.publish("lab/bench-a/ph1/cmd", b"for bench-a")
        unit_a.wait(lambda: unit_a.messages != [], "the hub's command at bench-a")
        assert unit_a.messages == [("lab/bench-a/ph1/cmd", b"for bench-a")]
    finally:
        for client in (unit_a, hub_client, monitor):
            client.close()


def test_wrong_password_anonymous_and_unknown_accounts_are_refused(hub: Hub) -> None:
    with pytest.raises(Refused):
        hub.client("bench-a", "wrong", password="not-the-password")
    with pytest.raises(Refused):
        Client(hub.port, None, None, "anonymous")
    with pytest.raises(Refused):
        hub.client("bench-a", "bench-b's password", password=hub.store.units["bench-b"])
    with pytest.raises(Refused):
        hub.client("bench-z", "unknown", password="whatever-password")


def test_reprovisioned_unit_gets_a_new_password_the_others_keep_theirs(hub: Hub, tmp_path: Path) -> None:
    before = hub.store.units.copy()
    lines_before = dict(line.split(":", 1) for line in (hub.out / "passwd").read_text().splitlines())
    assert main(["provision", "unit", "bench-a", "--inventory", str(tmp_path / "fleet.yaml"),
                 "--out", str(hub.out)]) == 0
    after = CredentialStore.open(hub.out / "credentials.yaml")
    assert after.units["bench-a"] != before["bench-a"]
    assert after.units["bench-b"] == before["bench-b"]
    assert after.services == hub.store.services
    lines_after = dict(line.split(":", 1) for line in (hub.out / "passwd").read_text().splitlines())
    assert lines_after["bench-a"] != lines_before["bench-a"]
    assert {k: v for k, v in lines_after.items() if k != "bench-a"} == \
        {k: v for k, v in lines_before.items() if k != "bench-a"}
    user_data = (hub.out / "bench-a" / "user-data").read_text()
    assert after.units["bench-a"] in user_data and before["bench-a"] not in user_data
    # The broker reads its password file again on SIGHUP (`supervisorctl signal HUP labedge-broker`).
    hub.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:
        try:
            Client(hub.port, "bench-a", before["bench-a"], "old").close()
        except Refused:
            break
        assert time.monotonic() < deadline, "the old password still works after the reload"
        time.sleep(0.1)
    Client(hub.port, "bench-a", after.units["bench-a"], "new").close()
    Client(hub.port, "bench-b", before["bench-b"], "other").close()


def test_labedge_watch_logs_in_with_the_hub_yaml(hub: Hub) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "labedge", "watch", "--config", str(hub.out / "hub.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()

    def expect(fragment: str) -> str:
        while True:
            line = lines.get(timeout=15)
            if fragment in line:
                return line

    unit_a = hub.client("bench-a", "labedge-unit-bench-a")
    try:
        assert f"on 127.0.0.1:{hub.port}" in expect("watching lab/#")
        reading = json.dumps({"seq": 7, "hist": False, "readings": [
            {"ts": "2026-12-01T00:00:00.000Z", "values": {"ph": 7.01}}]}).encode()
        unit_a.publish("lab/bench-a/ph1/data", reading)
        assert "ph=7.01" in expect("bench-a/ph1")
    finally:
        unit_a.close()
        proc.terminate()
        proc.wait(10)
