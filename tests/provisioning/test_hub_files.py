"""`labedge provision hub`: hub.yaml the hub accepts, its supervisor programs, and TLS for the units."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub.config import load_hub_config
from labedge.cli import main
from lecis.config_loader import load_unit_config
from provisioning.broker import find_mosquitto, free_port, wait_listening
from provisioning.credentials import CredentialStore, mosquitto_verify
from provisioning.inventory import HUB_ACCOUNT
from tests.provisioning.fleet_files import inventory_text
from tests.provisioning.test_cloud_init import apply_write_files


def test_hub_yaml_is_accepted_by_the_hub_and_holds_the_hub_account(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    text = inventory_text(tmp_path).replace("  mosquitto_user:", "  bucket: lab-runs\n  mosquitto_user:")
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["provision", "hub", "--inventory", str(path), "--out", str(out)]) == 0
    store = CredentialStore.open(out / "credentials.yaml")
    hub = load_hub_config(out / "hub.yaml", check_files=False)
    assert hub.broker.username == HUB_ACCOUNT and hub.broker.password == store.services[HUB_ACCOUNT]
    assert (hub.broker.host, hub.broker.port) == ("127.0.0.1", 1883)
    assert hub.storage is not None and hub.storage.bucket == "lab-runs"
    assert (out / "hub.yaml").stat().st_mode & 0o077 == 0
    assert (out / "passwd").stat().st_mode & 0o077 == 0
    lines = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert set(lines) == {"bench-a", "bench-b", "labedge_hub", "labedge_monitor"}
    assert all(mosquitto_verify(store.units[u], lines[u]) for u in ("bench-a", "bench-b"))
    programs = (out / "labedge-hub.conf").read_text()
    assert "[program:labedge-broker]" in programs and f"-c {tmp_path}/etc/mosquitto.conf" in programs
    assert f"hub run --config {tmp_path}/etc/hub.yaml" in programs and "autorestart=true" in programs


def test_a_retired_unit_loses_its_broker_account(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(inventory_text(tmp_path))
    out = tmp_path / "out"
    assert main(["provision", "hub", "--inventory", str(path), "--out", str(out)]) == 0
    path.write_text(inventory_text(tmp_path, units=("bench-a",)))
    assert main(["provision", "hub", "--inventory", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "unit bench-b is no longer in the inventory: its broker account was removed" in err
    assert "bench-b" not in (out / "passwd").read_text() and "bench-b" not in (out / "acl").read_text()
    assert "bench-b" not in CredentialStore.open(out / "credentials.yaml").units


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder.mkdir()
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "hub.key", "hub.csr", "hub.crt"))
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=labedge test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost")
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
        str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def plain_connect(username: str, password: str) -> bytes:
    """An MQTT 3.1.1 CONNECT packet with a user name and password."""
    def field(text: str) -> bytes:
        raw = text.encode()
        return len(raw).to_bytes(2, "big") + raw

    body = field("MQTT") + bytes([4, 0xC2]) + (10).to_bytes(2, "big") + field("plain") + field(username) \
        + field(password)
    return bytes([0x10, len(body)]) + body


def test_with_certificates_units_connect_over_tls_and_plain_mqtt_is_loopback_only(tmp_path: Path) -> None:
    mosquitto = find_mosquitto()
    if mosquitto is None:
        pytest.skip("mosquitto is not installed; run `make test`, which installs it")
    ca, _, _ = _certificates(tmp_path / "certs")
    port, tls_port = free_port(), free_port()
    text = inventory_text(tmp_path, port=port).replace(
        "  mosquitto_user:", f"  tls_port: {tls_port}\n  tls: {{ca: certs/ca.crt, cert: certs/hub.crt, "
                             f"key: certs/hub.key}}\n  mosquitto_user:")
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["provision", "fleet", "--inventory", str(path), "--out", str(out)]) == 0
    assert main(["provision", "hub", "--inventory", str(path), "--out", str(out),
                 "--install-dir", str(out)]) == 0
    conf = (out / "mosquitto.conf").read_text()
    assert f"listener {port} 127.0.0.1\n" in conf and f"listener {tls_port}\n" in conf
    assert (out / "tls" / "server.key").stat().st_mode & 0o077 == 0
    # The unit gets the CA in user-data and names it in unit.yaml.
    apply_write_files(out / "bench-a" / "user-data")
    unit = load_unit_config(tmp_path / "etc" / "unit.yaml", check_ports=False)
    assert unit.broker.port == tls_port and unit.broker.tls_ca == str(tmp_path / "etc" / "ca.crt")
    assert (tmp_path / "etc" / "ca.crt").read_text() == ca.read_text()
    (tmp_path / "hub" / "mosquitto").mkdir(parents=True)
    with open(tmp_path / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([mosquitto, "-c", str(out / "mosquitto.conf")], stderr=log)
    try:
        wait_listening("127.0.0.1", tls_port)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-a-tls",
                             protocol=mqtt.MQTTv311)
        client.tls_set(ca_certs=unit.broker.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.username_pw_set("bench-a", unit.broker.password)
        client.connect("127.0.0.1", tls_port)
        client.loop_start()
        info = client.publish("lab/bench-a/ph1/data", b"{}", qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        client.disconnect()
        client.loop_stop()
        # Plain MQTT on the units' port: the broker closes the connection without a CONNACK.
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as sock:
            sock.sendall(plain_connect("bench-a", unit.broker.password or ""))
            try:
                answer = sock.recv(16)
            except ConnectionResetError:
                answer = b""
            assert answer == b"", "the broker answered plain MQTT on the TLS port"
    finally:
        proc.terminate()
        proc.wait(10)
