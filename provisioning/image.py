"""Writing a unit's bundle into a copy of a Raspberry Pi OS image, without root or a loop device.

The partition table (MBR, or GPT behind a protective MBR) is read here; the
first FAT partition is the boot partition, which mtools writes in place
(`mcopy -i IMAGE@@OFFSET`). The base image is only ever read: the copy is
made beside the output, filled, checked, and renamed to the output name at
the end, so a failure leaves no half-written image behind.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lecis.errors import LabedgeError

SECTOR = 512
ReadAt = Callable[[int, int], bytes]
MBR_FAT_TYPES = {0x01: "FAT12", 0x04: "FAT16", 0x06: "FAT16", 0x0B: "FAT32", 0x0C: "FAT32 (LBA)",
                 0x0E: "FAT16 (LBA)", 0xEF: "EFI system"}
GPT_FAT_TYPES = {uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"): "basic data",
                 uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"): "EFI system"}
# Directory entries and cluster rounding: room asked beyond the files' own bytes.
SLACK_BYTES = 64 * 1024
GPT_TABLE_MAX = 1 << 20


class ImageRefused(LabedgeError):
    """The base image cannot take the bundle; nothing was written."""


class ImageToolMissing(ImageRefused):
    """mtools is not installed."""


@dataclass(frozen=True)
class Partition:
    number: int
    offset: int  # bytes from the start of the image
    size: int
    kind: str


def partitions(head: bytes, read_at: ReadAt) -> list[Partition]:
    """Every partition of the table at the start of an image (pure apart from `read_at`)."""
    if len(head) < SECTOR or head[510:512] != b"\x55\xaa":
        raise ImageRefused("no partition table (no MBR signature in the first sector): "
                           "expected a whole-disk image such as Raspberry Pi OS's .img")
    found = []
    for index in range(4):
        entry = head[446 + 16 * index: 446 + 16 * (index + 1)]
        kind = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if kind == 0xEE:
            return _gpt(read_at)
        if kind != 0 and count:
            found.append(Partition(index + 1, start * SECTOR, count * SECTOR,
                                   MBR_FAT_TYPES.get(kind, f"type 0x{kind:02x}")))
    return found


def _gpt(read: ReadAt) -> list[Partition]:
    header = read(SECTOR, SECTOR)
    if header[:8] != b"EFI PART":
        raise ImageRefused("a protective MBR but no GPT header at sector 1")
    entries_lba, count, size = struct.unpack_from("<QII", header, 72)
    # UEFI: entries of 128 x 2^n bytes, 128 of them on every disk tool's table (16 KiB). A header
    # claiming more is damaged, or made to have gigabytes read into memory.
    if size < 128 or size & (size - 1) or count * size > GPT_TABLE_MAX:
        raise ImageRefused(f"damaged GPT: its header claims {count} entries of {size} bytes (expected "
                           f"entries of 128 x 2^n bytes, {GPT_TABLE_MAX} bytes in all at most)")
    table = read(entries_lba * SECTOR, count * size)
    found = []
    for index in range(count):
        entry = table[index * size:(index + 1) * size]
        if len(entry) < 56:
            break
        kind = uuid.UUID(bytes_le=bytes(entry[:16]))
        first, last = struct.unpack_from("<QQ", entry, 32)
        if kind.int != 0:
            found.append(Partition(index + 1, first * SECTOR, (last - first + 1) * SECTOR,
                                   GPT_FAT_TYPES.get(kind, str(kind))))
    return found


def is_fat(boot_sector: bytes) -> bool:
    """A FAT file system's boot sector (signature and the type label of FAT12/16 or FAT32)."""
    return (len(boot_sector) >= SECTOR and boot_sector[510:512] == b"\x55\xaa"
            and (boot_sector[54:59] in (b"FAT12", b"FAT16") or boot_sector[82:87] == b"FAT32"))


def boot_partition(image: Path) -> Partition:
    """The first partition holding a FAT file system; ImageRefused naming what was found otherwise."""
    if not image.is_file():
        raise ImageRefused(f"image {image} does not exist or is not a file")
    size = image.stat().st_size
    with image.open("rb") as fh:
        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        table = partitions(read_at(0, SECTOR), read_at)
        for part in table:
            if part.offset + SECTOR <= size and is_fat(read_at(part.offset, SECTOR)):
                return part
    shown = ", ".join(f"{p.number}: {p.kind} at byte {p.offset}" for p in table) or "none"
    raise ImageRefused(f"{image} has no FAT boot partition (partitions: {shown}); expected a Raspberry Pi "
                       f"OS image, whose first partition is the FAT boot partition")


def _mtools(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ImageToolMissing(f"{tool} is not installed (apt-get install mtools)")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False)


def free_bytes(image: Path, part: Partition) -> int:
    """Free space of the FAT file system, as mtools reports it."""
    done = _run([_mtools("mdir"), "-i", f"{image}@@{part.offset}", "::/"])
    match = re.search(r"([\d ]+) bytes free", done.stdout)
    if done.returncode != 0 or match is None:
        raise ImageRefused(f"mtools cannot read the FAT partition {part.number} of {image}: "
                           f"{(done.stderr or done.stdout).strip()}")
    return int(match.group(1).replace(" ", ""))


def write_image(base: Path, out: Path, files: dict[str, bytes],
                before_rename: Callable[[], None] | None = None) -> Partition:
    """`out` = `base` with `files` (name -> content) at the root of its boot partition.

    `before_rename` runs once the copy is complete and checked, just before it
    takes the name `out`; when it raises, no image is written.
    """
    if not base.is_file():
        raise ImageRefused(f"base image {base} does not exist")
    if out.exists() and out.resolve() == base.resolve():
        raise ImageRefused(f"the output {out} is the base image; choose another file name")
    if out.is_dir():
        raise ImageRefused(f"the output {out} is a folder; give the name of the image file to write, "
                           f"e.g. {out}/unit.img")
    part = boot_partition(base)
    needed = sum(len(data) for data in files.values()) + SLACK_BYTES
    free = free_bytes(base, part)
    if free < needed:
        raise ImageRefused(f"the boot partition of {base} has {free} bytes free; the bundle needs {needed}. "
                           f"Remove files from it or use a larger image; nothing was written")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    staging = out.with_name(f".{out.name}.{os.getpid()}.files")
    try:
        shutil.copyfile(base, tmp)
        staging.mkdir()
        names = []
        for name, data in files.items():
            (staging / name).write_bytes(data)
            names.append(str(staging / name))
        done = _run([_mtools("mcopy"), "-o", "-i", f"{tmp}@@{part.offset}", *names, "::/"])
        if done.returncode != 0:
            raise ImageRefused(f"mcopy could not write the bundle into the boot partition: "
                               f"{(done.stderr or done.stdout).strip()}; nothing was written")
        for name, data in files.items():
            if read_file(tmp, part, name) != data:
                raise ImageRefused(f"{name} read back from the image differs from what was written")
        if before_rename is not None:
            before_rename()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return part


def read_file(image: Path, part: Partition, name: str) -> bytes:
    """One file from the root of the FAT partition (mtype -i)."""
    done = subprocess.run([_mtools("mcopy"), "-n", "-i", f"{image}@@{part.offset}", f"::/{name}", "-"],
                          capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, check=False)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()
        raise ImageRefused(f"cannot read {name} from the image: {why}")
    return done.stdout
