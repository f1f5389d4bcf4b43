"""Starting an MQTT broker: Mosquitto when installed, else the embedded amqtt broker.

Used by `labedge lab`, `labedge broker` and the test rig, always on an
address and port passed in (tests use loopback and a free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from lecis.errors import LabedgeError, SettingInvalid
from lecis.unit_config import OutboxConfig

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerStartFailed(LabedgeError):
    """The broker did not start listening."""


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in MOSQUITTO_PATHS:
        if Path(path).exists():
            return path
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def queued_messages_for(outbox_max_messages: int = OutboxConfig().max_messages, units: int = 1) -> int:
    """Messages the broker must queue for one offline persistent subscriber (the hub).

    Every unit may replay a full outbox while the hub is away, and live readings
    keep coming during the replay: the queue holds all of it, plus a tenth.
    A smaller queue makes the broker drop what it already confirmed to the unit
    (docs/outbox.md, "Brokers").
    """
    if outbox_max_messages < 1 or units < 1:
        raise SettingInvalid("outbox_max_messages and units must be at least 1")
    whole = units * outbox_max_messages
    return whole + max(1000, whole // 10)


def mosquitto_config(host: str, port: int, data_dir: Path, persistence: bool = False,
                     max_queued: int | None = None, outbox_max_messages: int = OutboxConfig().max_messages,
                     units: int = 1) -> str:
    """A listener on host:port; QoS 1 never throttled in flight.

    `max_queued` per client (0: no limit) defaults to `queued_messages_for(outbox_max_messages, units)`.
    """
    if max_queued is None:
        max_queued = queued_messages_for(outbox_max_messages, units)
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        # Small packets (PUBACKs, ESTOPs) go out at once instead of waiting ~40 ms for a delayed ACK.
        "set_tcp_nodelay true",
        "max_inflight_messages 0",
        f"max_queued_messages {max_queued}",
        "max_queued_bytes 0",  # the message count above is the one limit
        # Started as root, Mosquitto would switch to its own user and could not write our folder.
        f"user {getpass.getuser()}",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {data_dir}/",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
    ]
    return "\n".join(lines) + "\n"


def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise BrokerStartFailed(f"broker did not listen on {host}:{port} within {timeout:.0f} s")


class MosquittoProcess:
    """A private Mosquitto; `start()`/`stop()` can be repeated on the same port (broker outages)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", binary: str | None = None,
                 persistence: bool = False, max_queued: int | None = None,
                 outbox_max_messages: int = OutboxConfig().max_messages, units: int = 1) -> None:
        self.persistence = persistence
        derived = queued_messages_for(outbox_max_messages, units)
        self.max_queued = derived if max_queued is None else max_queued
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise BrokerStartFailed("mosquitto is not installed (apt-get install mosquitto)")
        self._dir = Path(tempfile.mkdtemp(prefix="labedge-mosquitto-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MosquittoProcess:
        conf = self._dir / "mosquitto.conf"
        conf.write_text(mosquitto_config(self.host, self.port, self._dir, self.persistence, self.max_queued))
        self.proc = subprocess.Popen([str(self.binary), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            wait_listening(self.host, self.port)
        except BrokerStartFailed:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> MosquittoProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


async def run_embedded_broker(host: str, port: int, stop: asyncio.Event) -> None:
    """Serve MQTT with amqtt until `stop` is set (for machines without Mosquitto)."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    try:
        await stop.wait()
    finally:
        await broker.shutdown()
