"""Fixtures of the provisioning tests: a real Mosquitto on the files `labedge provision hub` writes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labedge.cli import main
from provisioning.broker import find_mosquitto, free_port, wait_listening
from provisioning.credentials import CredentialStore
from tests.provisioning.broker_clients import Client
from tests.provisioning.fleet_files import write_inventory


@dataclass
class Hub:
    port: int
    store: CredentialStore
    out: Path
    proc: subprocess.Popen[bytes]

    def client(self, account: str, name: str, password: str | None = None) -> Client:
        secret = password if password is not None else (
            self.store.units.get(account) or self.store.services[account])
        return Client(self.port, account, secret, name)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    mosquitto = find_mosquitto()
    if mosquitto is None:
        pytest.skip("mosquitto is not installed; run `make test`, which installs it")
    port = free_port()
    inventory = write_inventory(tmp_path, port=port)
    out = tmp_path / "out"
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(out)]) == 0
    assert main(["provision", "hub", "--inventory", str(inventory), "--out", str(out),
                 "--install-dir", str(out)]) == 0
    (tmp_path / "hub" / "mosquitto").mkdir(parents=True)
    with open(tmp_path / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([mosquitto, "-c", str(out / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                stderr=log)
    try:
        wait_listening("127.0.0.1", port)
        yield Hub(port, CredentialStore.open(out / "credentials.yaml"), out, proc)
    finally:
        proc.terminate()
        proc.wait(10)
