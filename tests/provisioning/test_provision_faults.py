"""Provisioning that fails half-way (a full disk, an impossible --out, a kill during the image copy): the
store, the bundles and the outputs stay as they were; no unit gets a new password with an old bundle."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labedge.cli import main
from provisioning import bundles, image
from provisioning.credentials import CredentialStore
from tests.provisioning.fleet_files import write_inventory
from tests.provisioning.test_image import _need_tools, make_image, sha256


def _provisioned(tmp_path: Path) -> tuple[Path, str, bytes]:
    inventory = write_inventory(tmp_path)
    assert main(["provision", "fleet", "--inventory", str(inventory), "--out", str(tmp_path)]) == 0
    password = CredentialStore.open(tmp_path / "credentials.yaml").units["bench-a"]
    user_data = (tmp_path / "bench-a" / "user-data").read_bytes()
    assert password.encode() in user_data
    return inventory, password, user_data


def _unchanged(tmp_path: Path, password: str, user_data: bytes) -> None:
    assert CredentialStore.open(tmp_path / "credentials.yaml").units["bench-a"] == password
    assert (tmp_path / "bench-a" / "user-data").read_bytes() == user_data
    assert not list((tmp_path / "bench-a").glob(".*staged"))


def test_a_full_disk_while_writing_a_unit_leaves_its_password_and_bundle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    inventory, password, user_data = _provisioned(tmp_path)
    real_write = os.write
    calls = {"n": 0}

    def write(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 3:  # the third bundle file: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(bundles.os, "write", write)
    assert main(["provision", "unit", "bench-a", "--inventory", str(inventory), "--out", str(tmp_path)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    _unchanged(tmp_path, password, user_data)


def test_an_out_inside_the_base_image_path_is_refused_and_the_unit_keeps_its_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_tools()
    inventory, password, user_data = _provisioned(tmp_path)
    base = make_image(tmp_path / "base.img")
    before = sha256(base)
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(base / "bench-a.img"), "--dir", str(tmp_path)]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert sha256(base) == before
    _unchanged(tmp_path, password, user_data)


def test_nothing_is_stored_before_the_image_is_complete(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a kill -9 during the (long) copy of the base image would find on disk: nothing changed."""
    _need_tools()
    inventory, password, user_data = _provisioned(tmp_path)
    base = make_image(tmp_path / "base.img")
    seen: list[str] = []

    def copy_then_full(src: Path, dst: Path) -> None:
        seen.append(CredentialStore.open(tmp_path / "credentials.yaml").units["bench-a"])
        shutil.copyfileobj(open(src, "rb"), open(dst, "wb"), 1 << 20)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image.shutil, "copyfile", copy_then_full)
    out = tmp_path / "cards" / "bench-a.img"
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(out), "--dir", str(tmp_path)]) == 2
    assert seen == [password]
    assert not out.exists() and not list(out.parent.glob(".bench-a.img*"))
    _unchanged(tmp_path, password, user_data)
    monkeypatch.undo()
    # And once it works, the image, the store and the bundle agree on the new password.
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(out), "--dir", str(tmp_path)]) == 0
    new = CredentialStore.open(tmp_path / "credentials.yaml").units["bench-a"]
    assert new != password
    assert new.encode() in (tmp_path / "bench-a" / "user-data").read_bytes()
    part = image.boot_partition(out)
    assert new.encode() in image.read_file(out, part, "user-data")


def test_a_gpt_header_claiming_a_huge_table_is_refused_without_reading_it(tmp_path: Path) -> None:
    _need_tools()
    base = make_image(tmp_path / "base.img", "gpt")
    with base.open("r+b") as fh:  # the header's entry count (offset 80 of LBA 1): 4 billion entries
        fh.seek(512 + 80)
        fh.write((0xFFFFFFFF).to_bytes(4, "little"))
    with pytest.raises(image.ImageRefused, match="damaged GPT: its header claims 4294967295 entries"):
        image.boot_partition(base)


def test_a_gpt_whose_fat_partition_is_not_the_first_is_found(tmp_path: Path) -> None:
    _need_tools()
    path = tmp_path / "base.img"
    subprocess.run(["truncate", "-s", "40M", str(path)], check=True)
    table = "label: gpt\n2048,8192,L\n10240,65536,U\n,,L\n"
    subprocess.run([shutil.which("sfdisk") or "/usr/sbin/sfdisk", "-q", str(path)], input=table.encode(),
                   check=True)
    subprocess.run([shutil.which("mkfs.vfat") or "/usr/sbin/mkfs.vfat", "--offset", "10240", str(path),
                    str(65536 // 2)], check=True, capture_output=True)
    part = image.boot_partition(path)
    assert (part.number, part.offset) == (2, 10240 * 512)
    inventory = write_inventory(tmp_path)
    out = tmp_path / "bench-a.img"
    assert main(["provision", "image", str(path), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(out)]) == 0
    assert b"#cloud-config" in image.read_file(out, image.boot_partition(out), "user-data")


def test_an_out_that_is_a_folder_is_refused_before_anything_is_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_tools()
    inventory, password, user_data = _provisioned(tmp_path)
    base = make_image(tmp_path / "base.img")
    (tmp_path / "cards").mkdir()
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(tmp_path / "cards"), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the output" in err and "is a folder; give the name of the image file" in err
    _unchanged(tmp_path, password, user_data)
