"""Inventories for the provisioning tests, written into a test's folder."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIq3FvR0bL5V1tKq4xXo3oJYm8qS2Yc0mF0O7bVt3kXa tech@lab"

PH = """\
module: ph1
driver: ezo
probe: ph
port: {dev}/ph1
period_s: 0.2
"""


def inventory_text(tmp: Path, port: int = 1883, units: tuple[str, ...] = ("bench-a", "bench-b"),
                   extra_unit: str = "") -> str:
    """A fleet of `units`, each with a pH circuit (file DCD) and two switches on pins (inline DCDs)."""
    (tmp / "dcd").mkdir(exist_ok=True)
    (tmp / "dcd" / "ph1.yaml").write_text(PH.format(dev=tmp / "dev"))
    user = getpass.getuser()
    head = f"""\
fleet:
  login: {user}
  ssh_authorized_keys: ["{KEY}"]
  labedge: {Path(sys.executable).with_name("labedge")}
  config_dir: {tmp}/etc
  data_dir: {tmp}/data
  log_dir: {tmp}/log
hub:
  id: hub-1
  broker_host: 127.0.0.1
  port: {port}
  data_dir: {tmp}/hub
  mosquitto_user: {user}
wifi:
  lab: {{ssid: LabNet, password: "correct horse", country: GB}}
units:
"""
    body = ""
    for unit in units:
        body += f"""\
  - id: {unit}
    site: room-1
    wifi: lab
    buttons: {{start_pin: 5, stop_pin: 6}}
    modules:
      - dcd/ph1.yaml
      - {{module: heater, driver: gpio.switch, pin: 22, max_on_s: 900}}
      - {{module: aeration, driver: gpio.switch, pin: 27, max_on_s: 900, on_controller_loss: hold}}
{extra_unit}"""
    return head + body


def write_inventory(tmp: Path, **kwargs: object) -> Path:
    path = tmp / "fleet.yaml"
    path.write_text(inventory_text(tmp, **kwargs))  # type: ignore[arg-type]
    return path
