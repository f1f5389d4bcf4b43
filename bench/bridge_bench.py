"""Board bridge figures: command round trip at 115200 baud beside the frames' wire time, and the
firmware's flash and RAM.

Run: `.venv/bin/python -m bench.bridge_bench [--commands N]`. The board is the real firmware in
simavr (firmware_bridge/simrig), whose UART moves bytes at the emulated baud rate; the host is
firmware_bridge.transport, as a unit uses it. Wire time = (request + answer bytes) x 10 bits / baud
(8N1). Target: p50 round trip under 2x wire time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import select
import subprocess
import sys
import time
import tty
from pathlib import Path

from firmware_bridge import frames
from firmware_bridge.emulated import simavr_rig
from firmware_bridge.frames import Request
from firmware_bridge.transport import BAUDRATE, Transport

TARGET_RATIO = 2.0
FLASH_BYTES, RAM_BYTES = 32 * 1024, 2 * 1024
CASES = (("PING", ()), ("SET", ("D2", "1", "60000")), ("READ", ("A0",)))


def wire_ms(request: bytes, answer: bytes, baud: int = BAUDRATE) -> float:
    return (len(request) + len(answer)) * 10 / baud * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def firmware_size(elf: Path) -> tuple[int, int]:
    """(flash, RAM) bytes: text + data in flash, data + bss in RAM (avr-size's Berkeley columns)."""
    out = subprocess.run(["avr-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in re.split(r"\s+", out.splitlines()[1].strip())[:3])
    return text + data, data + bss


def raw_round_trips(port: str, commands: int) -> float:
    """p50 ms of PING written straight to the pty and its answer read back: the emulator's own floor."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    parser = frames.Parser()
    times = []
    try:
        for i in range(commands):
            seq = i % 255 + 1
            started = time.perf_counter()
            os.write(fd, frames.encode(Request(seq, "PING")))
            answered = False
            while not answered:
                select.select([fd], [], [], 1.0)
                got = parser.feed(os.read(fd, 256))
                answered = any(isinstance(f, frames.Ok) and f.seq == seq for f in got)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
    return percentile(times, 0.5)


async def round_trips(port: str, commands: int) -> list[tuple[str, float, float, float, int]]:
    rows = []
    async with Transport(port) as t:
        await t.wait_connected(10)
        for _ in range(50):  # warm the round-trip estimate and the pty
            await t.request("PING")
        for command, args in CASES:
            times = []
            answer = b""
            for _ in range(commands):
                started = time.perf_counter()
                ok = await t.request(command, *args)
                times.append((time.perf_counter() - started) * 1000)
                answer = frames.encode(ok)
            request = frames.encode(Request(123, command, args))
            rows.append((command, percentile(times, 0.5), percentile(times, 0.99),
                         wire_ms(request, answer), t.counters.retransmits))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge_bench", description=__doc__)
    parser.add_argument("--commands", type=int, default=1000, help="round trips per command (default 1000)")
    args = parser.parse_args(argv)
    rig = simavr_rig()
    if rig is None:
        print("bridge_bench: simavr or avr-gcc missing; run `make test` (it installs them)", file=sys.stderr)
        return 2
    elf, simrig = rig
    flash, ram = firmware_size(elf)
    proc = subprocess.Popen([str(simrig), str(elf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        pty = proc.stdout.readline().decode().split(" ", 1)[1].strip()
        time.sleep(1.5)  # past the boot HELLO
        raw_p50 = raw_round_trips(pty, args.commands)
        rows = asyncio.run(round_trips(pty, args.commands))
    finally:
        if proc.stdin is not None:
            proc.stdin.write(b"quit\n")
            proc.stdin.close()
        proc.wait(timeout=10)
    print(f"bridge round trip at {BAUDRATE} baud, {args.commands} each, firmware in simavr")
    print(f"{'command':<8} {'p50 ms':>8} {'p99 ms':>8} {'wire ms':>8} {'p50/wire':>9} {'p99/wire':>9}")
    ok = True
    for command, p50, p99, wire, _ in rows:
        ok = ok and p50 / wire < TARGET_RATIO
        print(f"{command:<8} {p50:8.2f} {p99:8.2f} {wire:8.2f} {p50 / wire:9.2f} {p99 / wire:9.2f}")
    print(f"PING written to the pty and read back without the host code: p50 {raw_p50:.2f} ms "
          f"({raw_p50 / rows[0][3]:.2f}x wire): the emulator's own floor; the host adds "
          f"{rows[0][1] - raw_p50:+.2f} ms")
    print(f"retransmits: {rows[-1][4]} (spurious ones when the machine stalls past the adaptive wait)")
    print(f"target p50 < {TARGET_RATIO:g}x wire time: {'met' if ok else 'NOT met'}")
    print(f"firmware {elf.name}: flash {flash} B of {FLASH_BYTES} ({flash / FLASH_BYTES:.1%}), "
          f"RAM {ram} B of {RAM_BYTES} ({ram / RAM_BYTES:.1%}) static (data + bss)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
