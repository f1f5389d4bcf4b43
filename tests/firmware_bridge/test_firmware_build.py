"""The firmware and the rig build from a clean tree, and the build prints flash and RAM use."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.firmware_bridge.simrig import FIRMWARE_DIR, SIMRIG_DIR, require_rig


def clean_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("build"))
    return target


def test_the_firmware_builds_from_a_clean_tree_within_the_atmega328p(tmp_path: Path) -> None:
    require_rig()
    tree = clean_copy(FIRMWARE_DIR, tmp_path / "firmware")
    done = subprocess.run(["make", "-C", str(tree)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tree / "build" / "labedge-board.elf").is_file()
    assert (tree / "build" / "labedge-board.hex").read_text().startswith(":")
    used = re.search(r"^flash: (\d+) of 32768 bytes, ram: (\d+) of 2048 bytes$", done.stdout, re.M)
    assert used, done.stdout
    flash, ram = map(int, used.groups())
    assert 0 < flash <= 32768 - 512  # the Uno's bootloader keeps the last 512 bytes
    assert 0 < ram <= 2048 - 512  # room for the stack
    assert "warning" not in done.stderr


def test_the_rig_builds_from_a_clean_tree(tmp_path: Path) -> None:
    require_rig()
    tree = clean_copy(SIMRIG_DIR, tmp_path / "simrig")
    done = subprocess.run(["make", "-C", str(tree)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    usage = subprocess.run([str(tree / "build" / "simrig")], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: simrig FIRMWARE.elf" in usage.stderr


def test_the_rig_says_what_is_wrong_with_a_missing_firmware(tmp_path: Path) -> None:
    require_rig()
    done = subprocess.run([str(SIMRIG_DIR / "build" / "simrig"), str(tmp_path / "nope.elf")],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    assert "cannot read the firmware" in done.stderr and "nope.elf" in done.stderr
