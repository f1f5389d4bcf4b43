"""Provisioning figures: a fleet's bundles, the locked-down broker's cost, the lab's start-up time.

    python -m bench.provision_bench [--units 50] [--messages 20000] [--no-lab]

1. `labedge provision fleet` + `provision hub` for N units (inline DCDs): seconds per unit.
2. QoS 1 publishes of one unit through Mosquitto: anonymous broker vs the generated one
   (password file, ACL with N unit accounts): messages per second and the ratio.
3. `labedge lab`: seconds from start to both units ready, the run `running` and a session open.
Prints numbers and ratios only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from labedge.cli import main as labedge
from provisioning.broker import MosquittoProcess, find_mosquitto, free_port, wait_listening
from provisioning.credentials import CredentialStore

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIq3FvR0bL5V1tKq4xXo3oJYm8qS2Yc0mF0O7bVt3kXa b@lab"
UNIT = """\
  - id: bench-{i}
    site: room-{i}
    wifi: lab
    modules:
      - {{module: ph1, driver: ezo, probe: ph, port: /dev/ttyUSB0}}
      - {{module: heater, driver: gpio.switch, pin: 22, max_on_s: 900}}
"""


def inventory(folder: Path, units: int, port: int) -> Path:
    user = os.environ.get("USER") or __import__("getpass").getuser()
    text = f"""\
fleet:
  login: {user}
  ssh_authorized_keys: ["{KEY}"]
hub:
  id: hub-1
  broker_host: 127.0.0.1
  port: {port}
  data_dir: {folder}/hub
  mosquitto_user: {user}
wifi:
  lab: {{ssid: LabNet, password: "correct horse"}}
units:
""".replace('password: "correct horse"}', 'password: "correct horse", country: GB}')
    path = folder / "fleet.yaml"
    path.write_text(text + "".join(UNIT.format(i=i) for i in range(units)))
    return path


def provision(folder: Path, units: int, port: int) -> tuple[Path, float]:
    path = inventory(folder, units, port)
    out = folder / "out"
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        start = time.perf_counter()
        assert labedge(["provision", "fleet", "--inventory", str(path), "--out", str(out)]) == 0
        assert labedge(["provision", "hub", "--inventory", str(path), "--out", str(out),
                        "--install-dir", str(out)]) == 0
        elapsed = time.perf_counter() - start
    return out, elapsed


def publish_rate(port: int, username: str | None, password: str | None, messages: int) -> float:
    """QoS 1 messages per second, a window of 100 in flight."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{username}",
                         protocol=mqtt.MQTTv311)
    if username:
        client.username_pw_set(username, password)
    client.max_inflight_messages_set(100)
    done = threading.Event()
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] == messages:
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = json.dumps({"seq": 1, "hist": False, "readings": [{"ts": "2026-12-01T00:00:00.000Z",
                                                                  "values": {"ph": 7.0}}]}).encode()
    start = time.perf_counter()
    for _ in range(messages):
        client.publish("lab/bench-0/ph1/data", payload, qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return messages / elapsed


def lab_start(folder: Path) -> float:
    port, web, bucket = free_port(), free_port(), free_port()
    start = time.perf_counter()
    lab = subprocess.Popen([sys.executable, "-m", "labedge", "lab", "--dir", str(folder / "lab"), "--port",
                            str(port), "--web-port", str(web), "--bucket-port", str(bucket), "--no-watch"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen: dict[str, dict[str, object]] = {}
    up = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError):
            seen[msg.topic] = json.loads(msg.payload)
        ready = all(seen.get(f"lab/{u}/$state", {}).get("state") == "ready" for u in ("bench-1", "bench-2"))
        if ready and seen.get("lab/hub/experiment/state", {}).get("state") == "running" \
                and seen.get("lab/hub/sessions/bench-1", {}).get("state") == "open":
            up.set()

    try:
        wait_listening("127.0.0.1", port, timeout=60)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-lab")
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.subscribe("lab/#", qos=1)
        client.loop_start()
        up.wait(180)
        elapsed = time.perf_counter() - start
        client.disconnect()
        client.loop_stop()
        return elapsed if up.is_set() else float("nan")
    finally:
        os.killpg(lab.pid, signal.SIGINT)
        lab.wait(90)


def run(args: argparse.Namespace) -> None:
    if find_mosquitto() is None:
        sys.exit("mosquitto is not installed")
    with tempfile.TemporaryDirectory(prefix="labedge-provision-bench-") as tmp:
        folder = Path(tmp)
        port = free_port()
        out, elapsed = provision(folder, args.units, port)
        per_unit = elapsed / args.units * 1000
        print(f"provision fleet + hub, {args.units} units: {elapsed:.2f} s ({per_unit:.1f} ms per unit)")
        (folder / "hub" / "mosquitto").mkdir(parents=True)
        store = CredentialStore.open(out / "credentials.yaml")
        locked = subprocess.Popen([str(find_mosquitto()), "-c", str(out / "mosquitto.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening("127.0.0.1", port)
            plains, acls = [], []
            with MosquittoProcess() as anonymous:
                for _ in range(args.rounds):  # alternated: a busy machine slows both alike
                    plains.append(publish_rate(anonymous.port, None, None, args.messages))
                    acls.append(publish_rate(port, "bench-0", store.units["bench-0"], args.messages))
            plain, acl = statistics.median(plains), statistics.median(acls)
        finally:
            locked.terminate()
            locked.wait(10)
        print(f"QoS 1 publishes of one unit (median of {args.rounds}): anonymous broker {plain:,.0f}/s, "
              f"generated broker (password file, ACL of {args.units} units) {acl:,.0f}/s, "
              f"ratio {acl / plain:.2f}")
        if not args.no_lab:
            print(f"labedge lab: both units ready, run running, session open after {lab_start(folder):.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-lab", action="store_true")
    run(parser.parse_args())
