"""MQTT credentials: one random password per unit and per hub service, kept in a 0600 store.

The store (`credentials.yaml` in the provisioning folder) is the one place the
plain passwords live on the provisioning machine; the broker gets only their
hashes, in Mosquitto's own password-file format (PBKDF2-SHA512, `$7$`, as
`mosquitto_passwd` writes it). Rotating one account rewrites the store with
every other account unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lecis.atomic_file import write_atomic
from lecis.errors import ConfigError, LabedgeError
from lecis.yaml_loader import Fields, load_yaml

STORE_NAME = "credentials.yaml"
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for `$7$`
SALT_BYTES = 12


class CredentialStoreUnusable(LabedgeError):
    """The credentials store cannot be read or is not private."""


def new_password() -> str:
    """32 URL-safe characters (192 random bits): nothing to quote in YAML, INI or shell."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """`$7$<iterations>$<salt>$<hash>` as in a Mosquitto 2 password file."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def mosquitto_verify(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        salt, iterations = base64.b64decode(parts[3], validate=True), int(parts[2])
    except ValueError:  # a damaged line: it gets a new hash
        return False
    if not 0 < iterations <= 1_000_000:
        return False
    return secrets.compare_digest(mosquitto_hash(password, salt, iterations), hashed)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, mode 0600 from the first byte; old or new survives a crash."""
    write_atomic(path, text.encode(), mode=0o600)


@dataclass
class CredentialStore:
    """Account name -> password, for units and hub services."""

    path: Path
    units: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> CredentialStore:
        """The store at `path`, empty when the file does not exist yet."""
        if not path.exists():
            return cls(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CredentialStoreUnusable(
                f"{path} is readable by others (mode {mode:04o}); it holds every unit's password. "
                f"Run: chmod 600 {path}, then rotate the passwords (labedge provision fleet --rotate)")
        try:
            doc = load_yaml(path, "a labedge credentials store")
        except ConfigError as exc:
            raise CredentialStoreUnusable(f"{exc}\n(the store was written by labedge provision; restore "
                                          f"it from a backup, or delete it and re-provision every unit "
                                          f"and the hub)") from None
        f = Fields(doc)
        f.mapping((), ("units", "services"))
        store = cls(path)
        for key, table in (("units", store.units), ("services", store.services)):
            given = f.mapping((key,), None) or {}
            for name in given:
                value = f.string((key, name), None, required=True, expected="a password")
                if value is not None:
                    table[name] = value
        if f.problems:
            raise CredentialStoreUnusable("\n".join(str(p) for p in f.problems))
        return store

    def unit(self, unit: str, rotate: bool = False) -> str:
        """The unit's password; a new one when there is none yet or `rotate`."""
        if rotate or unit not in self.units:
            self.units[unit] = new_password()
        return self.units[unit]

    def service(self, name: str) -> str:
        if name not in self.services:
            self.services[name] = new_password()
        return self.services[name]

    def retire_except(self, keep: set[str]) -> list[str]:
        """Forget the units not in `keep` (retired ones); returns their ids."""
        gone = sorted(set(self.units) - keep)
        for unit in gone:
            del self.units[unit]
        return gone

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# labedge MQTT credentials: every account's password in plain text. Mode 0600; keep it",
                 "# private and backed up. Written by `labedge provision`; do not edit.", "units:"]
        lines += [f"  {name}: {json.dumps(pw)}" for name, pw in sorted(self.units.items())] or ["  {}"]
        lines += ["services:"]
        lines += [f"  {name}: {json.dumps(pw)}" for name, pw in sorted(self.services.items())] or ["  {}"]
        text = "\n".join(lines) + "\n"
        write_private(self.path, text.replace("units:\n  {}", "units: {}").replace("services:\n  {}",
                                                                                   "services: {}"))
