"""`labedge provision image`: the bundle written into a copy of a disk image, without root."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labedge.cli import main
from provisioning.credentials import CredentialStore
from provisioning.image import ImageRefused, boot_partition, free_bytes, read_file
from tests.provisioning.fleet_files import write_inventory

TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mdir")


def _need_tools() -> None:
    missing = [tool for tool in TOOLS
               if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; run `make test`, which installs fdisk, dosfstools "
                    "and mtools")


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def make_image(path: Path, label: str = "dos", fat_mib: int = 32, fat: bool = True) -> Path:
    """A disk image like Raspberry Pi OS's: a FAT boot partition at 1 MiB, then a Linux one."""
    subprocess.run(["truncate", "-s", f"{fat_mib + 16}M", str(path)], check=True)
    kind = {"dos": ("c", "83"), "gpt": ("U", "L")}[label]
    table = f"label: {label}\n2048,{fat_mib * 2048},{kind[0]}\n,,{kind[1]}\n"
    subprocess.run([_tool("sfdisk"), "-q", str(path)], input=table.encode(), check=True)
    if fat:
        subprocess.run([_tool("mkfs.vfat"), "--offset", "2048", "-n", "BOOTFS", str(path),
                        str(fat_mib * 1024)], check=True, capture_output=True)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_image_carries_the_bundle_and_the_base_is_unchanged(tmp_path: Path, label: str) -> None:
    _need_tools()
    base = make_image(tmp_path / "base.img", label)
    # Stock images already carry cloud-init files on the boot partition: ours replace them.
    subprocess.run([_tool("mcopy"), "-i", f"{base}@@1048576", "-", "::/user-data"], input=b"#cloud-config\n",
                   check=True)
    before = sha256(base)
    inventory = write_inventory(tmp_path)
    out = tmp_path / "cards" / "bench-a.img"
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(out)]) == 0
    assert sha256(base) == before
    part = boot_partition(out)
    bundle = tmp_path / "cards" / "bench-a"
    for name in ("user-data", "meta-data", "network-config"):
        assert read_file(out, part, name) == (bundle / name).read_bytes()
    password = CredentialStore.open(tmp_path / "cards" / "credentials.yaml").units["bench-a"]
    assert password.encode() in read_file(out, part, "user-data")
    listing = subprocess.run([_tool("mdir"), "-b", "-i", f"{out}@@{part.offset}", "::/"], capture_output=True,
                             text=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    assert "user-data" in listing and "network-config" in listing


def test_image_without_a_fat_partition_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_tools()
    base = make_image(tmp_path / "base.img", fat=False)
    before = sha256(base)
    inventory = write_inventory(tmp_path)
    out = tmp_path / "bench-a.img"
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(out)]) == 2
    assert "has no FAT boot partition" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "bench-a").exists()
    assert not (tmp_path / "credentials.yaml").exists()
    assert sha256(base) == before


def test_image_without_room_is_refused_and_the_unit_keeps_its_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_tools()
    base = make_image(tmp_path / "base.img", fat_mib=1)
    filler = tmp_path / "filler"
    filler.write_bytes(os.urandom(free_bytes(base, boot_partition(base)) - 8192))  # 8 kB left
    subprocess.run([_tool("mcopy"), "-i", f"{base}@@1048576", str(filler), "::/filler"], check=True)
    before = sha256(base)
    inventory = write_inventory(tmp_path)
    main(["provision", "fleet", "--inventory", str(inventory), "--out", str(tmp_path)])
    password = CredentialStore.open(tmp_path / "credentials.yaml").units["bench-a"]
    out = tmp_path / "bench-a.img"
    assert main(["provision", "image", str(base), "--unit", "bench-a", "--inventory", str(inventory),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bytes free" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".bench-a.img*"))
    assert sha256(base) == before
    assert CredentialStore.open(tmp_path / "credentials.yaml").units["bench-a"] == password


def test_not_a_disk_image_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.img"
    text.write_bytes(b"hello" * 200)
    with pytest.raises(ImageRefused, match="no partition table"):
        boot_partition(text)
