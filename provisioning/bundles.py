"""Writing the provisioning outputs: a unit's folder `DIR/UNIT/` and the hub's files in `DIR/`.

Every file is written to a temporary name and renamed, so an interrupted run
leaves either the old file or the new one. The credentials store is saved
before any bundle that uses a new password, so a bundle never carries a
password the store (and hence the broker) does not know.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from provisioning.cloud_init import checklist, meta_data, network_config, user_data
from provisioning.credentials import CredentialStore, write_private
from provisioning.inventory import HUB_ACCOUNT, SERVICE_ACCOUNTS, Inventory, UnitEntry
from provisioning.mosquitto_files import (
    ACL_FILE,
    CONF_FILE,
    PASSWORD_FILE,
    TLS_DIR,
    acl_file,
    hub_yaml,
    mosquitto_conf,
    password_file,
)
from provisioning.supervisor_files import hub_programs, unit_program

UNIT_FILES = ("user-data", "meta-data", "network-config", "labedge-unit.conf", "CHECKLIST.txt")
BOOT_FILES = ("user-data", "meta-data", "network-config")  # what cloud-init reads from the boot partition
HUB_FILES = (CONF_FILE, PASSWORD_FILE, ACL_FILE, "hub.yaml", "labedge-hub.conf")
DEFAULT_MOSQUITTO = "/usr/sbin/mosquitto"


def write_public(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@dataclass(frozen=True)
class UnitBundle:
    unit: str
    folder: Path
    files: dict[str, str]

    def boot_files(self) -> dict[str, bytes]:
        return {name: self.files[name].encode() for name in BOOT_FILES}


def unit_bundle(inventory: Inventory, unit: UnitEntry, password: str, out: Path) -> UnitBundle:
    """The unit's files as text (pure apart from reading the CA file)."""
    fleet, hub = inventory.fleet, inventory.hub
    ca = hub.tls.ca.read_text() if hub.tls is not None else None
    files = {
        "user-data": user_data(unit, fleet, hub, password, ca),
        "meta-data": meta_data(unit),
        "network-config": network_config(unit),
        "labedge-unit.conf": unit_program(unit.id, fleet),
        "CHECKLIST.txt": checklist(unit, fleet, hub),
    }
    return UnitBundle(unit.id, out / unit.id, files)


Staged = list[tuple[Path, Path]]  # (temporary file, final name), renamed by `commit`


def stage_unit_bundle(bundle: UnitBundle) -> Staged:
    """Every file of the bundle written and synced beside its final name, not yet in place.

    The slow and fallible part (a full disk) happens here, before the store is
    saved; `commit` then only renames. On an error nothing is left staged.
    """
    bundle.folder.mkdir(parents=True, exist_ok=True)
    os.chmod(bundle.folder, 0o700)  # user-data and network-config hold secrets
    staged: Staged = []
    try:
        for name, text in bundle.files.items():
            final = bundle.folder / name
            if final.is_dir():
                raise IsADirectoryError(21, "a folder is in the way of a bundle file", str(final))
            tmp = final.with_name(f".{name}.{os.getpid()}.staged")
            # user-data holds the MQTT password and network-config the Wi-Fi passphrase.
            mode = 0o600 if name in ("user-data", "network-config") else 0o644
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            staged.append((tmp, final))
            try:
                os.fchmod(fd, mode)
                data = text.encode()
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        discard(staged)
        raise
    return staged


def commit(staged: Staged) -> None:
    """Put every staged file in place (renames only) and sync the folders."""
    for tmp, final in staged:
        os.replace(tmp, final)
    for folder in {final.parent for _, final in staged}:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def discard(staged: Staged) -> None:
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)


def write_unit_bundle(bundle: UnitBundle) -> None:
    commit(stage_unit_bundle(bundle))


def hub_installed(out: Path) -> bool:
    return (out / CONF_FILE).exists()


def write_broker_accounts(inventory: Inventory, store: CredentialStore, out: Path) -> None:
    """The password file and ACL for every unit of the inventory and the hub services."""
    accounts = {unit.id: store.unit(unit.id) for unit in inventory.units}
    accounts |= {name: store.service(name) for name in SERVICE_ACCOUNTS}
    store.save()
    previous = (out / PASSWORD_FILE).read_text() if (out / PASSWORD_FILE).exists() else ""
    write_private(out / PASSWORD_FILE, password_file(accounts, previous))
    write_public(out / ACL_FILE, acl_file([u.id for u in inventory.units], inventory.fleet.topic_root))


def write_hub(inventory: Inventory, store: CredentialStore, out: Path, install_dir: str,
              mosquitto: str = DEFAULT_MOSQUITTO) -> list[str]:
    """Every hub file in `out`; returns the ids of retired units whose accounts were removed."""
    out.mkdir(parents=True, exist_ok=True)
    retired = store.retire_except({unit.id for unit in inventory.units})
    hub, fleet = inventory.hub, inventory.fleet
    write_broker_accounts(inventory, store, out)
    if hub.tls is not None:
        (out / TLS_DIR).mkdir(exist_ok=True)
        for source, name in ((hub.tls.ca, "ca.crt"), (hub.tls.cert, "server.crt")):
            write_public(out / TLS_DIR / name, source.read_text())
        write_private(out / TLS_DIR / "server.key", hub.tls.key.read_text())
    write_public(out / CONF_FILE, mosquitto_conf(hub, install_dir, len(inventory.units)))
    write_private(out / "hub.yaml", hub_yaml(hub, fleet, store.service(HUB_ACCOUNT)))
    write_public(out / "labedge-hub.conf", hub_programs(hub, fleet, mosquitto, install_dir))
    return retired

