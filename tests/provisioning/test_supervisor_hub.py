"""supervisord runs the generated hub programs: Mosquitto on the generated files, then the hub with hub.yaml.

The hub logs in with its own account and announces itself; a unit's account
reads its commands; nobody else gets in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labedge.cli import main
from provisioning.broker import find_mosquitto, free_port, wait_listening
from provisioning.credentials import CredentialStore
from provisioning.inventory import MONITOR_ACCOUNT
from tests.provisioning.broker_clients import Client, Refused
from tests.provisioning.fleet_files import write_inventory
from tests.provisioning.test_supervisor_unit import SUPERVISORD, supervisorctl, wait_state


@pytest.fixture
def supervised_hub(tmp_path: Path) -> Iterator[tuple[Path, int, CredentialStore]]:
    mosquitto = find_mosquitto()
    if mosquitto is None:
        pytest.skip("mosquitto is not installed; run `make test`, which installs it")
    port = free_port()
    inventory = write_inventory(tmp_path, port=port)
    out = tmp_path / "out"
    assert main(["provision", "hub", "--inventory", str(inventory), "--out", str(out),
                 "--install-dir", str(out), "--mosquitto", mosquitto]) == 0
    for folder in ("log", "hub/mosquitto"):  # what docs/provisioning.md has the technician make
        (tmp_path / folder).mkdir(parents=True)
    sup = tmp_path / "supervisor"
    sup.mkdir()
    conf = sup / "supervisord.conf"
    conf.write_text(SUPERVISORD.format(dir=sup, program=out / "labedge-hub.conf"))
    proc = subprocess.Popen([str(Path(sys.executable).with_name("supervisord")), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield conf, port, CredentialStore.open(out / "credentials.yaml")
    finally:
        proc.terminate()
        proc.wait(60)


def test_supervisord_runs_broker_and_hub_on_the_generated_files(
        supervised_hub: tuple[Path, int, CredentialStore]) -> None:
    conf, port, store = supervised_hub
    wait_listening("127.0.0.1", port, timeout=30)
    monitor = Client(port, MONITOR_ACCOUNT, store.services[MONITOR_ACCOUNT], "monitor")
    try:
        monitor.subscribe("lab/hub/$state")
        monitor.wait(lambda: any(json.loads(raw).get("online") is True for _, raw in monitor.messages),
                     "the hub online, logged in with its own account", timeout=30)
        wait_state(conf, "RUNNING", program="labedge-hub")
        wait_state(conf, "RUNNING", program="labedge-broker")
        status = supervisorctl(conf, "status")
        assert "labedge-broker" in status and "labedge-hub" in status
        with pytest.raises(Refused):
            Client(port, None, None, "anonymous")
    finally:
        monitor.close()
