"""A pseudo-terminal published at a fixed path, standing in for a USB serial adapter.

The slave side is what a client opens (through the symlink at `path`, like
/dev/serial/by-id/...); the simulator reads and writes the master side from
asyncio. Like a real adapter, bytes sent while no client has the port open
are lost, and `close()` makes the port vanish under a client that has it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import tty
from collections.abc import Callable
from pathlib import Path

from lecis.errors import ConfigError, ConfigProblem

MAX_LINE = 256  # a stream with no terminator is cut here rather than held forever


class LineSplitter:
    """Bytes in, command lines out: split on `\\r`, and tolerate `\\n` and `\\r\\n`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._after_cr = False

    @property
    def pending(self) -> bool:
        """True when part of a line has arrived without its terminator."""
        return bool(self._buffer)

    def drop_pending(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if byte == 0x0A and self._after_cr:  # the \n of a \r\n pair ends nothing more
                self._after_cr = False
                continue
            self._after_cr = byte == 0x0D
            if byte in (0x0D, 0x0A) or len(self._buffer) >= MAX_LINE:
                lines.append(self._buffer.decode("ascii", errors="replace"))
                self._buffer.clear()
                if byte not in (0x0D, 0x0A):
                    self._buffer.append(byte)
            else:
                self._buffer.append(byte)
        return lines


class PtyLink:
    """One pty whose slave is reachable at `path`; `on_data` gets every chunk a client writes.

    `on_peer` is called each time a client opens the port.
    """

    def __init__(self, path: Path | str, on_data: Callable[[bytes], None],
                 on_peer: Callable[[], None] | None = None, poll_s: float = 0.05) -> None:
        self.path = Path(path)
        self._on_data = on_data
        self._on_peer = on_peer
        self._poll_s = poll_s
        self._master: int | None = None
        self._poller = select.poll()
        self._watch: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self.slave_name = ""

    @property
    def is_open(self) -> bool:
        return self._master is not None

    @property
    def peer_present(self) -> bool:
        """True while some client has the slave side open."""
        if self._master is None:
            return False
        # Linux flags the master with POLLHUP while no one holds the slave.
        return not any(ev & select.POLLHUP for _, ev in self._poller.poll(0))

    def open(self) -> None:
        """Create the pty and publish its slave at `path`; call from inside the event loop."""
        self._check_path()
        self._loop = asyncio.get_running_loop()
        master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as on a serial line
        self.slave_name = os.ttyname(slave)
        os.close(slave)  # hold only the master, so a client's close is visible as POLLHUP
        os.set_blocking(master, False)
        self._master = master
        self._poller = select.poll()
        self._poller.register(master, select.POLLIN | select.POLLHUP)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.path)  # atomic: a client never sees a half-made link
        self._watch = self._loop.create_task(self._wait_for_peer())

    def write(self, data: bytes) -> bool:
        """Send bytes to the client; False when they were lost (no client, port gone, buffer full)."""
        if self._master is None or not self.peer_present:
            return False
        try:
            os.write(self._master, data)
        except OSError:  # full buffer or hung up: a UART without flow control just loses bytes
            return False
        return True

    def close(self) -> None:
        """Close the pty and remove the symlink, like pulling the adapter out."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._master is not None:
            self._stop_reading()
            os.close(self._master)
            self._master = None
        with contextlib.suppress(OSError):
            if os.readlink(self.path) == self.slave_name:
                self.path.unlink()

    def _check_path(self) -> None:
        problem = None
        if not self.path.parent.is_dir():
            problem = f"folder {self.path.parent} does not exist; create it or choose another link path"
        elif self.path.exists() and not self.path.is_symlink():
            problem = f"{self.path} exists and is not a symlink; remove it or choose another link path"
        if problem:
            raise ConfigError([ConfigProblem(str(self.path), None, "link", problem)])

    async def _wait_for_peer(self) -> None:
        # No event tells the master that a slave was opened, so poll while nobody is there.
        while not self.peer_present:
            await asyncio.sleep(self._poll_s)
        assert self._master is not None and self._loop is not None
        self._loop.add_reader(self._master, self._readable)
        self._reading = True
        if self._on_peer is not None:
            self._on_peer()

    def _stop_reading(self) -> None:
        if self._reading and self._master is not None and self._loop is not None:
            self._loop.remove_reader(self._master)
        self._reading = False

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO: the client closed the port; wait for the next one
            data = b""
        if data:
            self._on_data(data)
            return
        self._stop_reading()
        assert self._loop is not None
        self._watch = self._loop.create_task(self._wait_for_peer())
