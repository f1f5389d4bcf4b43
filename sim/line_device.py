"""A line instrument (a turbidimeter) on a pseudo-terminal, with binary noise on demand.

It answers `query` with `answer` and its `write_terminator`, the way the
`line` driver's DCD describes an instrument. `noise_on()` floods the line
with bytes that are never printable ASCII, cut into short lines, at the rate
a serial line of `baudrate` carries (10 bits a byte): a loose ground or a
wrong baud rate looks like this.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from types import TracebackType

from sim.faults import NOISE_BYTES
from sim.pty_link import PtyLink

NOISE_CHUNK = 256  # bytes per write while the noise is on
NOISE_LINE = 12  # mean bytes per noise line


class LineInstrumentSimulator:
    """`async with LineInstrumentSimulator(link) as sim:` publishes the port at `link`."""

    def __init__(self, link: Path | str, query: str = "MEAS?", answer: str = "T=12.3 NTU",
                 terminator: str = "\r\n", seed: int = 0, baudrate: int = 115_200) -> None:
        self.port = str(link)
        self.query = query
        self.answer = answer
        self.terminator = terminator
        self.baudrate = baudrate
        self.queries = 0
        self.noise_lines = 0  # noise lines handed to the pty (some may be lost when its buffer is full)
        self._rng = random.Random(seed)
        self._link: PtyLink | None = None
        self._buffer = b""
        self._noise: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LineInstrumentSimulator:
        self._link = PtyLink(self.port, on_data=self._received)
        self._link.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.noise_off()
        if self._link is not None:
            self._link.close()
            self._link = None

    def noise_on(self) -> None:
        if self._noise is None:
            self._noise = asyncio.get_running_loop().create_task(self._flood())

    async def noise_off(self) -> None:
        task, self._noise = self._noise, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _received(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            if raw.rstrip(b"\r").decode("latin-1") == self.query and self._link is not None:
                self.queries += 1
                self._link.write((self.answer + self.terminator).encode("latin-1"))

    async def _flood(self) -> None:
        while True:
            chunk = bytearray(self._rng.choice(NOISE_BYTES) for _ in range(NOISE_CHUNK))
            lines = 0
            for at in range(self._rng.randrange(NOISE_LINE), NOISE_CHUNK, NOISE_LINE):
                chunk[at] = 0x0A
                lines += 1
            if self._link is not None and self._link.write(bytes(chunk)):
                self.noise_lines += lines
            await asyncio.sleep(NOISE_CHUNK * 10 / self.baudrate)
