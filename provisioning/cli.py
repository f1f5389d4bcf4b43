"""`labedge provision unit|fleet|hub|image`: bundles for technicians, files for the hub's broker.

Every command reads the whole inventory first; with any problem it prints
each one (file:line: field: message), exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lecis.errors import ConfigError, LabedgeError

if TYPE_CHECKING:
    from provisioning.credentials import CredentialStore
    from provisioning.inventory import Inventory

STORE_HELP = "the credentials store (default: DIR/credentials.yaml, mode 0600)"


def add_provision_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prov = subparsers.add_parser(
        "provision", help="bundles for new units (cloud-init, supervisor) and the hub's broker files",
        description="Provision units and the hub from a fleet inventory (examples/fleet.yaml; "
                    "docs/provisioning.md). Nothing is written while the inventory has a problem.")
    sub = prov.add_subparsers(dest="provision_command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--inventory", required=True, type=Path, metavar="FILE",
                       help="the fleet inventory (YAML)")
        p.add_argument("--credentials", type=Path, default=None, metavar="FILE", help=STORE_HELP)

    unit = sub.add_parser("unit", help="write DIR/UNIT/ for one unit; rotates its MQTT password",
                          description="Write the bundle of one unit: cloud-init user-data, meta-data, "
                                      "network-config, its supervisor program and a checklist. The unit "
                                      "gets a new MQTT password; every other unit keeps its own.")
    unit.add_argument("unit", metavar="UNIT", help="the unit id, as in the inventory")
    common(unit)
    unit.add_argument("--out", required=True, type=Path, metavar="DIR", help="the provisioning folder")
    unit.set_defaults(handler=run_unit)

    fleet = sub.add_parser("fleet", help="write DIR/UNIT/ for every unit",
                           description="Write the bundle of every unit of the inventory. Units keep the "
                                       "password they have (new units get one) unless --rotate.")
    common(fleet)
    fleet.add_argument("--out", required=True, type=Path, metavar="DIR", help="the provisioning folder")
    fleet.add_argument("--rotate", action="store_true", help="give every unit a new MQTT password")
    fleet.set_defaults(handler=run_fleet)

    hub = sub.add_parser("hub", help="write mosquitto.conf, password file, ACL, hub.yaml and supervisor file",
                         description="Write the hub's files: the broker's mosquitto.conf, password file "
                                     "and ACL, the hub's hub.yaml and supervisor programs. Units no longer "
                                     "in the inventory lose their broker account.")
    common(hub)
    hub.add_argument("--out", required=True, type=Path, metavar="DIR", help="the provisioning folder")
    hub.add_argument("--install-dir", default=None, metavar="PATH",
                     help="where these files will be on the hub (default: fleet.config_dir, /etc/labedge)")
    hub.add_argument("--mosquitto", default="/usr/sbin/mosquitto", metavar="PATH",
                     help="the mosquitto binary on the hub (default: /usr/sbin/mosquitto)")
    hub.set_defaults(handler=run_hub)

    image = sub.add_parser("image", help="a copy of a Raspberry Pi OS image with one unit's bundle on it",
                           description="Copy BASE.img to --out and write the unit's cloud-init files into "
                                       "its FAT boot partition (mtools; no root, no loop device). The base "
                                       "image is never modified. The unit's password is rotated.")
    image.add_argument("base", type=Path, metavar="BASE.img", help="the golden Raspberry Pi OS image")
    image.add_argument("--unit", required=True, help="the unit id")
    common(image)
    image.add_argument("--out", required=True, type=Path, metavar="UNIT.img", help="the image to write")
    image.add_argument("--dir", type=Path, default=None,
                       help="the provisioning folder for the unit's bundle and the store (default: the "
                            "folder of --out)")
    image.set_defaults(handler=run_image)


def _report(exc: ConfigError, path: Path) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    print(f"labedge provision: {len(exc.problems)} problem(s) in {path}; nothing was written",
          file=sys.stderr)
    return 2


Work = Callable[[contextlib.ExitStack], int]


def _guarded(work: Work) -> int:
    """Run `work`; a refusal is one message and exit status 2. Locks taken by `work` are let go."""
    try:
        with contextlib.ExitStack() as stack:
            return work(stack)
    except LabedgeError as exc:
        print(f"labedge provision: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder where a file must go, a full or read-only disk
        where = f" {exc.filename}" if exc.filename else ""
        print(f"labedge provision: cannot write{where}: {exc.strerror or exc}; what was written before "
              "stays as it was", file=sys.stderr)
        return 2


def _store_path(args: argparse.Namespace, folder: Path) -> Path:
    from provisioning.credentials import STORE_NAME

    return Path(args.credentials) if args.credentials is not None else folder / STORE_NAME


def _load(args: argparse.Namespace, folder: Path, stack: contextlib.ExitStack, units: list[str] | None = None
          ) -> tuple[Inventory, CredentialStore] | int:
    """The checked inventory and the store, locked until `stack` closes; exit status 2 on problems.

    The inventory is checked before anything exists on disk; the lock then keeps a
    second `labedge provision` on the same store from losing this one's passwords.
    """
    from edge.data_lock import LockHeld, PidLock
    from provisioning.credentials import CredentialStore
    from provisioning.inventory import InventoryInvalid, load_inventory

    try:
        inventory = load_inventory(args.inventory)
    except InventoryInvalid as exc:
        return _report(exc, args.inventory)
    for unit in units or []:
        inventory.unit(unit)  # an unknown unit is refused before anything exists on disk
    store_path = _store_path(args, folder)
    lock = PidLock(store_path.with_name(f".{store_path.name}.lock"), {"command": "labedge provision"})
    try:
        stack.enter_context(lock)
    except LockHeld as exc:
        print(f"labedge provision: another labedge provision is using {store_path} ({exc.holder}); "
              "wait for it to finish, then run this again. Nothing was written", file=sys.stderr)
        return 2
    return inventory, CredentialStore.open(store_path)


def _refresh_broker(inventory: Inventory, store: CredentialStore, out: Path, err: TextIO) -> None:
    from provisioning.bundles import hub_installed, write_broker_accounts

    if hub_installed(out):
        write_broker_accounts(inventory, store, out)
        print(f"broker accounts updated in {out}/passwd and {out}/acl: copy them to the hub and reload "
              "Mosquitto (sudo supervisorctl signal HUP labedge-broker)", file=err)
    else:
        print(f"next: `labedge provision hub --inventory ... --out {out}` so the broker knows the new "
              "password", file=err)


def _provision_units(args: argparse.Namespace, ids: list[str] | None, rotate: bool, out: Path,
                     stack: contextlib.ExitStack) -> int:
    from provisioning.bundles import Staged, commit, discard, stage_unit_bundle, unit_bundle

    loaded = _load(args, out, stack, ids)
    if isinstance(loaded, int):
        return loaded
    inventory, store = loaded
    units = inventory.units if ids is None else tuple(inventory.unit(i) for i in ids)
    passwords = {unit.id: store.unit(unit.id, rotate=rotate) for unit in units}
    bundles = [unit_bundle(inventory, unit, passwords[unit.id], out) for unit in units]
    for bundle in bundles:
        bundle.folder.mkdir(parents=True, exist_ok=True)  # a file in the way: refused before any rotation
    # Every bundle written beside its place first (a full disk fails here, with the store as it was),
    # then the store (a card never carries a password the store lost), then renames only: a unit is
    # never left with a rotated password and its old bundle.
    bar = Progress(len(bundles), sys.stderr) if ids is None else None
    staged: Staged = []
    try:
        for bundle in bundles:
            staged += stage_unit_bundle(bundle)
            if bar is not None:
                bar.step(bundle.unit)
        store.save()
    except BaseException:
        discard(staged)
        raise
    commit(staged)
    if bar is not None:
        bar.done()
    _refresh_broker(inventory, store, out, sys.stderr)
    if ids is not None and len(bundles) == 1:
        print(bundles[0].files["CHECKLIST.txt"])
    print(f"wrote {', '.join(str(b.folder) for b in bundles)}")
    return 0


def run_unit(args: argparse.Namespace) -> int:
    return _guarded(lambda stack: _provision_units(args, [args.unit], True, args.out, stack))


def run_fleet(args: argparse.Namespace) -> int:
    return _guarded(lambda stack: _provision_units(args, None, args.rotate, args.out, stack))


def run_hub(args: argparse.Namespace) -> int:
    def work(stack: contextlib.ExitStack) -> int:
        from provisioning.bundles import HUB_FILES, write_hub

        loaded = _load(args, args.out, stack)
        if isinstance(loaded, int):
            return loaded
        inventory, store = loaded
        install = args.install_dir or inventory.fleet.config_dir
        from provisioning.inventory import PATH

        # Both go into supervisor's ini (where % interpolates) and mosquitto.conf: nothing to quote.
        for option, value in (("--install-dir", install), ("--mosquitto", args.mosquitto)):
            if not PATH.match(value):
                print(f"labedge provision: {option} {value!r}: expected an absolute path of letters, digits, "
                      ". _ + - and /; nothing was written", file=sys.stderr)
                return 2
        retired = write_hub(inventory, store, args.out, install, args.mosquitto)
        for unit in retired:
            print(f"unit {unit} is no longer in the inventory: its broker account was removed",
                  file=sys.stderr)
        print(f"wrote {', '.join(HUB_FILES)} in {args.out} (install them in {install} on the hub; "
              f"docs/provisioning.md)")
        return 0

    return _guarded(work)


def run_image(args: argparse.Namespace) -> int:
    def work(stack: contextlib.ExitStack) -> int:
        from provisioning.bundles import Staged, commit, discard, stage_unit_bundle, unit_bundle
        from provisioning.image import boot_partition, write_image

        folder = args.dir if args.dir is not None else args.out.parent
        boot_partition(args.base)  # refuse a base without a FAT partition before anything is written
        loaded = _load(args, folder, stack, [args.unit])
        if isinstance(loaded, int):
            return loaded
        inventory, store = loaded
        unit = inventory.unit(args.unit)
        before = store.units.get(unit.id)
        bundle = unit_bundle(inventory, unit, store.unit(unit.id, rotate=True), folder)
        staged: Staged = []
        saved = False

        def before_rename() -> None:
            # The image is copied and filled (the long part) before anything is stored: a run killed,
            # refused or out of disk until here leaves the store, the bundle and --out as they were.
            nonlocal saved
            staged.extend(stage_unit_bundle(bundle))
            store.save()
            saved = True

        try:
            part = write_image(args.base, args.out, bundle.boot_files(), before_rename)
        except BaseException:
            discard(staged)
            if saved:  # the image could not be put in place after all: the unit keeps its password
                if before is not None:
                    store.units[unit.id] = before
                else:
                    del store.units[unit.id]
                store.save()
            raise
        commit(staged)
        _refresh_broker(inventory, store, folder, sys.stderr)
        print(f"wrote {args.out}: {', '.join(bundle.boot_files())} on boot partition {part.number} "
              f"(byte {part.offset}); bundle in {bundle.folder}")
        return 0

    return _guarded(work)


class Progress:
    """A one-line progress bar on a terminal; a line per step otherwise (logs, CI)."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total, self.out, self.width, self.count = total, out, width, 0
        self.tty = out.isatty()

    def step(self, label: str) -> None:
        self.count += 1
        filled = self.width * self.count // max(self.total, 1)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.count}/{self.total} {label}"
        self.out.write(f"\r{bar}\x1b[K" if self.tty else bar + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()
