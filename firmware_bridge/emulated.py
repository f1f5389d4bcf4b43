"""An emulated board behind a stable port name, for `labedge lab`.

`python -m firmware_bridge.emulated --link DIR/dev/board` runs the real
firmware in simavr (firmware_bridge/firmware, firmware_bridge/simrig; built
with make when the tools are installed) and keeps `--link` pointing at its
pseudo-terminal. Without simavr it runs `FakeBoard`, the protocol in Python,
and says so. Stops on SIGTERM or SIGINT, removing the link.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FIRMWARE_DIR = ROOT / "firmware"
SIMRIG_DIR = ROOT / "simrig"
ELF = FIRMWARE_DIR / "build" / "labedge-board.elf"
SIMRIG = SIMRIG_DIR / "build" / "simrig"


def simavr_rig() -> tuple[Path, Path] | None:
    """(firmware ELF, simrig) when they exist or can be built here, else None."""
    if shutil.which("make") and shutil.which("avr-gcc") and Path("/usr/include/simavr/sim_avr.h").exists():
        for directory in (FIRMWARE_DIR, SIMRIG_DIR):
            subprocess.run(["make", "-s", "-C", str(directory)], capture_output=True, check=False)
    return (ELF, SIMRIG) if ELF.exists() and SIMRIG.exists() else None


def _relink(link: Path, target: str) -> None:
    tmp = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)  # atomic: the unit never sees the name missing


async def _serve(link: Path) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    link.parent.mkdir(parents=True, exist_ok=True)
    rig = simavr_rig()
    if rig is None:
        from firmware_bridge.fakeboard import FakeBoard

        board = await FakeBoard.open(link)
        print(f"board: simavr not available; the protocol in Python (FakeBoard) on {link}", flush=True)
        try:
            await stop.wait()
        finally:
            await board.close()
        return 0
    proc = await asyncio.create_subprocess_exec(str(rig[1]), str(rig[0]), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        if not first.startswith("pty "):
            print(f"board: simrig did not start ({first!r})", file=sys.stderr)
            return 1
        _relink(link, first.split(" ", 1)[1])
        print(f"board: firmware {rig[0].name} in simavr on {link} -> {first[4:]}", flush=True)
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, asyncio.ensure_future(proc.wait())], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        return 0 if stop.is_set() else 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        if proc.returncode is None:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_bridge.emulated", description=__doc__)
    parser.add_argument("--link", type=Path, required=True,
                        help="the port name to keep pointing at the board")
    return asyncio.run(_serve(parser.parse_args(argv).link))


if __name__ == "__main__":
    sys.exit(main())
