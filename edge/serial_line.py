"""A thin line transport over a serial (reader, writer) pair, with timeouts on the injected clock.

Everything that means "the device is gone" (an OSError from pyserial when a
USB adapter is pulled, end of file, a closed transport) becomes DeviceLost
naming the port, so drivers only ever see labedge errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import serial_asyncio

from edge.driver import DriverResources
from edge.line_parse import shown
from lecis.clock import Clock
from lecis.errors import DeviceLost, LabedgeError

CHUNK_BYTES = 1024
CLOSE_WAIT_S = 1.0


class SerialTimeout(LabedgeError, TimeoutError):
    """No complete line arrived in time; `partial` holds what came without a terminator."""

    def __init__(self, port: str, seconds: float, partial: str) -> None:
        message = f"no complete line from {port} within {seconds:g} s"
        if partial:
            message += f" (only a partial line {shown(partial)})"
        super().__init__(message)
        self.port = port
        self.partial = partial
        self.message = message


def _ignore_outcome(task: asyncio.Future[bytes]) -> None:
    if not task.cancelled():
        task.exception()


async def open_line(
    resources: DriverResources,
    port: str,
    baudrate: int,
    *,
    clock: Clock,
    terminator: str,
    encoding: str = "ascii",
) -> SerialLine:
    """Open `port` through `resources.open_serial` (tests, the lab) or pyserial-asyncio."""
    opener: Any = resources.open_serial or serial_asyncio.open_serial_connection
    try:
        reader, writer = await opener(url=port, baudrate=baudrate)
    except (OSError, ValueError) as exc:  # pyserial's SerialException is an OSError
        raise DeviceLost(
            f"cannot open serial port {port}: {exc}; check that the instrument is plugged in "
            "and that the port name in its DCD is right"
        ) from exc
    return SerialLine(reader, writer, port=port, clock=clock, terminator=terminator, encoding=encoding)


class SerialLine:
    """Send text, read decoded lines split on `terminator`; stray `\\r`/`\\n` and empty lines are dropped."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        port: str,
        clock: Clock,
        terminator: str = "\r",
        encoding: str = "ascii",
        max_line: int = CHUNK_BYTES,
    ) -> None:
        self.port = port
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._encoding = encoding
        self._terminator = terminator.encode(encoding)
        self._max_line = max_line
        self._buffer = bytearray()
        self._closed = False

    def _lost(self, cause: BaseException | str) -> DeviceLost:
        return DeviceLost(f"serial port {self.port} failed: {cause}; is the instrument unplugged?")

    async def send(self, text: str) -> None:
        """Write `text` as is (the caller adds the terminator)."""
        if self._closed:
            raise self._lost("the port is closed")
        try:
            self._writer.write(text.encode(self._encoding, errors="replace"))
            await self._writer.drain()
        except OSError as exc:  # SerialException, ConnectionResetError after the transport died
            raise self._lost(exc) from exc

    def buffered_lines(self) -> list[str]:
        """Complete lines already received but not read yet (taken out of the buffer)."""
        lines = []
        while (line := self._take()) is not None:
            lines.append(line)
        return lines

    def discard(self) -> str:
        """Drop buffered bytes that do not yet form a line; return them decoded."""
        partial = self._decode(bytes(self._buffer))
        self._buffer.clear()
        return partial

    async def read_line(self, timeout: float) -> str:
        """The next non-empty line, without terminator. Raises SerialTimeout or DeviceLost."""
        line = self._take()
        if line is not None:
            return line
        timer = asyncio.ensure_future(self._clock.sleep(timeout))
        chunk: asyncio.Future[bytes] | None = None
        try:
            while True:
                chunk = asyncio.ensure_future(self._reader.read(CHUNK_BYTES))
                await asyncio.wait({chunk, timer}, return_when=asyncio.FIRST_COMPLETED)
                if not chunk.done():
                    chunk.cancel()
                    await asyncio.wait({chunk})  # it may still have completed with data
                if not chunk.cancelled():
                    self._feed(chunk)
                line = self._take()
                if line is not None:
                    return line
                if timer.done():
                    raise SerialTimeout(self.port, timeout, self.discard())
        finally:
            timer.cancel()
            if chunk is not None:
                chunk.cancel()
                # Left early (cancelled): a port dying now may end the read with an error nobody awaits.
                chunk.add_done_callback(_ignore_outcome)

    def _feed(self, chunk: asyncio.Future[bytes]) -> None:
        try:
            data = chunk.result()
        except OSError as exc:  # the exception the transport was lost with, e.g. SerialException
            raise self._lost(exc) from exc
        if not data:
            raise self._lost("end of file")
        self._buffer += data

    def _take(self) -> str | None:
        while True:
            end = self._buffer.find(self._terminator)
            if end < 0:
                if len(self._buffer) <= self._max_line:
                    return None
                # Noise without terminators: hand it out as a line, so it is reported, not hoarded.
                end, skip = self._max_line, 0
            else:
                skip = len(self._terminator)
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + skip]
            text = self._decode(raw).strip("\r\n")
            if text:
                return text

    def _decode(self, raw: bytes) -> str:
        return raw.decode(self._encoding, errors="replace")

    async def close(self) -> None:
        """Close the port; waits at most CLOSE_WAIT_S for the transport, then aborts it."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        waiter = asyncio.ensure_future(self._writer.wait_closed())
        timer = asyncio.ensure_future(self._clock.sleep(CLOSE_WAIT_S))
        await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        timer.cancel()
        if not waiter.done():
            waiter.cancel()
            self._writer.transport.abort()
        elif not waiter.cancelled():
            waiter.exception()  # a port that died raises here; it is closed either way
