"""Simulated button presses for a unit on mock pins: a unix socket that drives its button pins.

`labedge edge run --pin-factory mock --button-socket PATH` listens on PATH
(mode 0600, in a folder of this user's that nobody else can write: the
lab's `DIR/run/`). Each connection sends one line and gets one answer:

    press start | press stop | hold stop   ->   ok ... | error ...

A press drives the mock pin to its pressed level for a little longer than
the debounce time and then releases it, a hold for longer than
`estop_hold_s`: the unit's own button logic (edge/buttons.py) sees the
edges, so a held stop is the unit's ESTOP, as on a real bench. The answer
comes once the pin is released. Times are on the unit's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from lecis.errors import LabedgeError

if TYPE_CHECKING:
    from edge.unit import Unit

log = logging.getLogger("labedge.buttons")

MAX_LINE = 64
MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
MARGIN_S = 0.15  # beyond debounce (or the hold time), so the level is believed before the release


class ButtonSocketUnusable(LabedgeError):
    """The button socket cannot be opened safely (its folder is shared, or its path is taken)."""


def check_socket_path(path: Path) -> None:
    """Refuse a folder others can write (they could swap the socket) and a path that is not a stale socket."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise ButtonSocketUnusable(f"--button-socket {path}: a unix socket path is at most "
                                   f"{MAX_PATH} bytes; "
                                   "use a shorter folder")
    folder = path.parent
    try:
        info = folder.stat()
    except OSError as exc:
        raise ButtonSocketUnusable(f"--button-socket {path}: its folder cannot be used "
                                   f"({exc.strerror})") from None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ButtonSocketUnusable(
            f"--button-socket {path}: its folder {folder} must belong to this user and be writable by "
            f"nobody else (chmod 700 {folder})")
    try:
        existing = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(existing.st_mode) or existing.st_uid != os.getuid():
        raise ButtonSocketUnusable(f"--button-socket {path}: the path exists and is not a socket of ours; "
                                   "remove it or choose another path")
    path.unlink()  # a socket left by a unit that was killed


class ButtonSocket:
    """A UnitExtra (edge.unit_parts): opened and closed with the unit."""

    def __init__(self, unit: Unit, path: Path) -> None:
        self.unit = unit
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self.busy = asyncio.Lock()  # one press at a time: two at once would mix their edges

    async def start(self) -> None:
        check_socket_path(self.path)
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._client, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("simulated buttons on %s", self.path)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.server = None

    def unit_changed(self, unit: Unit) -> None:
        pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), 5.0)
            except (TimeoutError, ValueError, ConnectionError):
                return
            answer = await self.handle(line[:MAX_LINE].decode("ascii", "replace").strip())
            writer.write(answer.encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()

    async def handle(self, line: str) -> str:
        """`press start|stop` or `hold stop`: the answer line."""
        words = line.split()
        if len(words) != 2 or words[0] not in ("press", "hold") or words[1] not in ("start", "stop"):
            return "error expected: press start | press stop | hold stop"
        how, button = words
        if how == "hold" and button != "stop":
            return "error only the stop button is held (a held stop is the unit's ESTOP)"
        buttons = self.unit.config.buttons
        pin = buttons.start_pin if button == "start" else buttons.stop_pin
        factory = self.unit.resources.pin_factory
        if pin is None or factory is None:
            return f"error unit {self.unit.id} has no {button} button"
        held = buttons.estop_hold_s if how == "hold" else buttons.debounce_s
        seconds = held + buttons.debounce_s + MARGIN_S
        mock = factory.pin(pin)
        async with self.busy:
            # Wired to ground with a pull-up (the default), pressed is low.
            press, release = (mock.drive_low, mock.drive_high) if buttons.pull_up else (mock.drive_high,
                                                                                      mock.drive_low)
            press()
            try:
                await self.unit.clock.sleep(seconds)
            finally:
                release()
            # Let the release settle too, so the next press is a new one.
            await self.unit.clock.sleep(buttons.debounce_s + MARGIN_S)
        return f"ok {how} {button} on {self.unit.id}"
