"""A fault proxy between the host and a board: drops, duplicates and corrupts bytes, seeded.

The proxy opens the board's port and offers the host a pseudo-terminal of
its own (`port`, or a symlink `link` to it). Every byte crossing, either way,
is dropped with probability `drop`, replaced by another byte with
`corrupt`, or sent twice with `duplicate`; `random.Random(seed)` decides, so
a failing run can be replayed. `python -m firmware_bridge.proxy BOARD_PORT
--link PATH --drop 0.005 --corrupt 0.005` runs one by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tty
from dataclasses import dataclass, field
from pathlib import Path

from lecis.errors import SettingInvalid


@dataclass
class Faults:
    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingInvalid(f"fault rate {name} must be from 0 to 1, got {value}")
        if self.drop + self.corrupt + self.duplicate > 1.0:
            raise SettingInvalid("drop + corrupt + duplicate must not exceed 1")


@dataclass
class DirectionCounters:
    bytes: int = 0
    dropped: int = 0
    corrupted: int = 0
    duplicated: int = 0


@dataclass
class FaultProxy:
    board_port: str
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    link: Path | None = None
    to_board: DirectionCounters = field(default_factory=DirectionCounters)
    to_host: DirectionCounters = field(default_factory=DirectionCounters)
    _rng: random.Random = field(init=False)
    _host: int | None = None  # master side of the host's pty
    _host_slave: int | None = None
    _board: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def port(self) -> str:
        """What the host opens."""
        if self.link is not None:
            return str(self.link)
        assert self._host_slave is not None
        return os.ttyname(self._host_slave)

    async def __aenter__(self) -> FaultProxy:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        board = os.open(self.board_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        with contextlib.suppress(OSError):  # a pty (raw already) or a plain file in tests
            tty.setraw(board)
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._board, self._host, self._host_slave = board, master, slave
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(os.ttyname(slave))
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._pump, master, board, self.to_board)
        loop.add_reader(board, self._pump, board, master, self.to_host)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self._host, self._board):
            if fd is not None:
                loop.remove_reader(fd)
        for fd in (self._host, self._host_slave, self._board):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._host = self._host_slave = self._board = None
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def mangle(self, data: bytes, counters: DirectionCounters) -> bytes:
        """`data` after the faults (pure but for the seeded generator)."""
        out = bytearray()
        f, rng = self.faults, self._rng
        for byte in data:
            counters.bytes += 1
            roll = rng.random()
            if roll < f.drop:
                counters.dropped += 1
            elif roll < f.drop + f.corrupt:
                counters.corrupted += 1
                out.append(byte ^ rng.randrange(1, 256))
            elif roll < f.drop + f.corrupt + f.duplicate:
                counters.duplicated += 1
                out += bytes((byte, byte))
            else:
                out.append(byte)
        return bytes(out)

    def _pump(self, source: int, sink: int, counters: DirectionCounters) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the other side closed its end (EIO on a pty): nothing to forward
            return
        if data:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(sink, self.mangle(data, counters))


async def _main(args: argparse.Namespace) -> None:
    proxy = FaultProxy(args.board_port, Faults(args.drop, args.corrupt, args.duplicate), args.seed,
                       Path(args.link) if args.link else None)
    async with proxy:
        print(f"pty {proxy.port}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m firmware_bridge.proxy", description=__doc__)
    parser.add_argument("board_port")
    parser.add_argument("--link")
    parser.add_argument("--drop", type=float, default=0.005)
    parser.add_argument("--corrupt", type=float, default=0.005)
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
