"""A unit's cloud-init NoCloud files for Raspberry Pi OS: user-data, meta-data, network-config.

Raspberry Pi OS (Bookworm 2025 and later, Trixie) reads these three files
from the FAT boot partition on first boot. Everything the unit needs goes in
`user-data` as plain text (`write_files`, no base64), so a technician can read
what goes on the card: unit.yaml with the unit's MQTT password (mode 0600,
owned by the login user), its DCDs, the broker's CA and the supervisor program.
"""

from __future__ import annotations

import json
import uuid
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from provisioning.inventory import FleetSettings, HubSettings, UnitEntry
from provisioning.supervisor_files import UNIT_PROGRAM_PATH, unit_program

CA_NAME = "ca.crt"


def q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def unit_yaml(unit: UnitEntry, fleet: FleetSettings, hub: HubSettings, password: str) -> str:
    """The unit.yaml that goes to `<config_dir>/unit.yaml`, its password in plain text."""
    broker = [f"host: {q(hub.broker_host)}", f"port: {hub.unit_port}", f"username: {q(unit.id)}",
              f"password: {q(password)}"]
    if hub.tls is not None:
        broker.append(f"tls_ca: {q(fleet.config_dir + '/' + CA_NAME)}")
    lines = [f"# Unit {unit.id} at {unit.site}: written by `labedge provision` from the fleet inventory.",
             "# It holds this unit's MQTT password: mode 0600. Re-provision the unit to change it.",
             f"unit: {unit.id}",
             f"topic_root: {q(fleet.topic_root)}",
             "broker:", *[f"  {line}" for line in broker],
             f"data_dir: {q(fleet.data_dir)}",
             "modules:", *[f"  - dcd/{m.module}.yaml" for m in unit.modules]]
    if unit.start_pin is not None or unit.stop_pin is not None:
        lines.append("buttons:")
        pins = (("start_pin", unit.start_pin), ("stop_pin", unit.stop_pin))
        lines += [f"  {key}: {pin}" for key, pin in pins if pin is not None]
    if unit.status_led is not None:
        lines.append(f"status_led: {{pin: {unit.status_led}}}")
    return "\n".join(lines) + "\n"


def _file(path: str, content: str, permissions: str, owner: str) -> dict[str, Any]:
    # Deferred to the final stage: the login user exists by then, so `owner` can be set.
    return {"path": path, "content": LiteralScalarString(content), "owner": owner,
            "permissions": permissions, "defer": True}


def user_data(unit: UnitEntry, fleet: FleetSettings, hub: HubSettings, password: str,
              ca_text: str | None = None) -> str:
    """`#cloud-config` for one unit."""
    owner = f"{fleet.login}:{fleet.login}"
    conf = fleet.config_dir
    files = [_file(f"{conf}/unit.yaml", unit_yaml(unit, fleet, hub, password), "0600", owner)]
    files += [_file(f"{conf}/dcd/{m.module}.yaml", m.text, "0644", owner) for m in unit.modules]
    if ca_text is not None:
        files.append(_file(f"{conf}/{CA_NAME}", ca_text, "0644", "root:root"))
    files.append(_file(UNIT_PROGRAM_PATH, unit_program(unit.id, fleet), "0644", "root:root"))
    config: dict[str, Any] = {
        "hostname": unit.id,
        "manage_etc_hosts": True,
        "timezone": "UTC",
        "users": [{
            "name": fleet.login,
            "gecos": "labedge unit",
            "groups": "users,gpio,dialout,i2c,spi",
            "shell": "/bin/bash",
            "lock_passwd": True,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "ssh_authorized_keys": list(fleet.ssh_authorized_keys),
        }],
        "ssh_pwauth": False,
        "disable_root": True,
        "packages": ["supervisor"],
        "write_files": files,
        "runcmd": [
            f"install -d -o {fleet.login} -g {fleet.login} -m 0750 {fleet.data_dir} {fleet.log_dir}",
            "systemctl enable --now supervisor",
            "supervisorctl update",
        ],
    }
    out = StringIO()
    yaml = YAML()
    yaml.width = 4096  # long lines (SSH keys) stay on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.dump(config, out)
    head = (f"#cloud-config\n# labedge unit {unit.id} at {unit.site}. Written by `labedge provision`; "
            "it holds\n"
            f"# the unit's MQTT password in plain text: keep this card with you until it is in the unit.\n")
    return head + out.getvalue()


def meta_data(unit: UnitEntry, instance: str | None = None) -> str:
    """A new instance-id on every provisioning, so cloud-init runs again on a re-flashed card."""
    instance = instance or f"labedge-{unit.id}-{uuid.uuid4().hex[:12]}"
    return f"instance-id: {instance}\nlocal-hostname: {unit.id}\n"


def network_config(unit: UnitEntry) -> str:
    """Netplan v2: Wi-Fi with DHCP (wired Ethernet, when plugged, works by DHCP too)."""
    wifi = unit.wifi
    point = "{}" if wifi.password is None else f"{{password: {q(wifi.password)}}}"
    return (f"# Wi-Fi of unit {unit.id} ({wifi.ssid}); written by `labedge provision`.\n"
            "network:\n"
            "  version: 2\n"
            "  ethernets:\n"
            "    eth0:\n"
            "      dhcp4: true\n"
            "      optional: true\n"
            "  wifis:\n"
            "    wlan0:\n"
            "      dhcp4: true\n"
            "      optional: true\n"
            f"      regulatory-domain: {q(wifi.country)}\n"
            "      access-points:\n"
            f"        {q(wifi.ssid)}: {point}\n")


def checklist(unit: UnitEntry, fleet: FleetSettings, hub: HubSettings) -> str:
    """What the technician does with this bundle, in order."""
    modules = ", ".join(m.module for m in unit.modules)
    transport = f"TLS on port {hub.tls_port}" if hub.tls else f"plain MQTT on port {hub.port} (no TLS)"
    return f"""\
Unit {unit.id} at {unit.site}: checklist
=========================================
1. Flash: Raspberry Pi OS Lite (64-bit) with labedge installed (the golden image,
   docs/provisioning.md), either the ready image from `labedge provision image`,
   or flash the golden image and copy user-data, meta-data and network-config from
   this folder onto the card's boot partition (replace the files there).
2. Keep the card with you: user-data holds the unit's MQTT password in plain text.
3. Wire the modules: {modules}. Check every pin against the DCDs in user-data.
4. First boot (wait 2 to 3 minutes, cloud-init runs once), then from your machine:
     ssh {fleet.login}@{unit.id}.local          (your key; passwords are off)
     cloud-init status --long                   -> status: done, no errors
     hostname; timedatectl | grep 'Time zone'   -> {unit.id}; Etc/UTC (UTC)
     sudo supervisorctl status                  -> labedge-unit RUNNING
     ls -l {fleet.config_dir}/unit.yaml           -> -rw------- {fleet.login} {fleet.login}
     labedge edge run --config {fleet.config_dir}/unit.yaml --check
5. On the hub: the unit's account must be in the broker's password file
   (`labedge provision hub`, then reload Mosquitto). The broker is {hub.broker_host},
   {transport}. `labedge watch --config hub.yaml` on the hub shows {unit.id}'s readings.
6. Outputs: `sudo supervisorctl stop labedge-unit` turns every output off; check
   that the pumps and heater stop, then `sudo supervisorctl start labedge-unit`.
"""
