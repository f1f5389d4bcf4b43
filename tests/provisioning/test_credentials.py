"""Passwords in Mosquitto's own format, and the store that keeps them."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from provisioning.credentials import (
    CredentialStore,
    CredentialStoreUnusable,
    mosquitto_hash,
    mosquitto_verify,
)


def test_our_hash_and_mosquitto_passwd_agree(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (mosquitto package)")
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run([tool, "-b", str(passwd), "bench-1", "s3cret-Password"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert theirs.startswith("$7$101$")
    assert mosquitto_verify("s3cret-Password", theirs)
    assert not mosquitto_verify("s3cret-password", theirs)
    ours = mosquitto_hash("s3cret-Password")
    assert ours.split("$")[:3] == theirs.split("$")[:3] and len(ours) == len(theirs)


def test_damaged_hash_lines_do_not_verify() -> None:
    for line in ("", "$6$abc$def", "$7$x$AAAA$BBBB", "$7$101$not base64!$AAAA", "$7$999999999$AAAA$BBBB"):
        assert not mosquitto_verify("pw", line)


def test_the_store_is_private_and_survives_a_round_trip(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.yaml")
    first = store.unit("bench-1")
    store.service("labedge_hub")
    store.save()
    assert stat.S_IMODE((tmp_path / "credentials.yaml").stat().st_mode) == 0o600
    again = CredentialStore.open(tmp_path / "credentials.yaml")
    assert again.units == {"bench-1": first} and again.unit("bench-1") == first
    assert again.unit("bench-1", rotate=True) != first
    assert len(first) == 32


def test_a_damaged_store_is_refused_naming_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text("units: {bench-1: [not, a, password]}\n")
    path.chmod(0o600)
    with pytest.raises(CredentialStoreUnusable, match=r"units\.bench-1"):
        CredentialStore.open(path)
    path.write_text("units: {bench-1: \"x\"\n")
    with pytest.raises(CredentialStoreUnusable, match="restore it from a backup"):
        CredentialStore.open(path)
