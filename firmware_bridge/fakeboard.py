"""A board in Python behind a pseudo-terminal: PROTOCOL.md as the firmware implements it.

For tests of the host logic and for `labedge lab` where simavr is not
installed; the acceptance tests run the real firmware in simavr instead.
`FakeBoard.open(link)` creates a pty and, with `link`, a symlink to it that
stays the board's port name; `unplug()` and `plug()` make the port vanish and
return; `reset()` reboots with a new boot id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tty
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge import frames
from firmware_bridge.frames import Request

OUTPUTS = {"D2": "SET", "D4": "SET", "D7": "SET", "D8": "SET", "D3": "PWM", "S1": "STEP"}
ANALOG = tuple(f"A{i}" for i in range(6))
BOUNDS = {"SET": (0, 1), "PWM": (0, 255), "STEP": (-2000, 2000)}


@dataclass
class FakeBoard:
    """Runs in the caller's event loop; `levels` shows what the pins would be."""

    link: Path | None = None
    levels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTPUTS, 0))
    analog: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANALOG, 0))
    boot_id: str = ""
    executed: int = 0
    expired: list[str] = field(default_factory=list)
    answer: bool = True  # False: a board that has hung (hears, answers nothing)
    protocol: int = 1
    _deadline: dict[str, float] = field(default_factory=dict)
    _last: tuple[int, bytes] | None = None
    _heard: bool = False
    _master: int | None = None
    _slave: int | None = None
    _parser: frames.Parser = field(default_factory=frames.Parser)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _periods: dict[str, float] = field(default_factory=dict)
    _period_s: dict[str, float] = field(default_factory=dict)
    _hello_at: float = 0.0

    @classmethod
    async def open(cls, link: Path | None = None) -> FakeBoard:
        board = cls(link=link)
        board.plug()
        return board

    @property
    def port(self) -> str:
        if self.link is not None:
            return str(self.link)
        assert self._slave is not None
        return os.ttyname(self._slave)

    # ---- the port -----------------------------------------------------------------------------
    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation, before the host opens it
        self._master, self._slave = master, slave
        os.set_blocking(master, False)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(os.ttyname(slave))
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._readable)
        self._boot()
        self._tasks = [loop.create_task(self._tick())]

    def unplug(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        self.levels = dict.fromkeys(OUTPUTS, 0)

    async def close(self) -> None:
        self.unplug()

    def reset(self) -> None:
        """Reboot: outputs to default, memory empty, a new boot id, HELLO again."""
        self.levels = dict.fromkeys(OUTPUTS, 0)
        self._deadline.clear()
        self._periods.clear()
        self._boot()

    def _boot(self) -> None:
        self.boot_id = secrets.token_hex(4).upper()
        self.executed = 0
        self._last = None
        self._heard = False
        self._hello_at = 0.0
        self._send_hello()

    def _send_hello(self) -> None:
        self._write(frames.encode_body(f"0 HELLO {self.protocol} 0.1.0 {self.boot_id}"))
        self._hello_at = asyncio.get_running_loop().time()

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._master, data)

    # ---- behaviour ----------------------------------------------------------------------------
    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.005)
            now = loop.time()
            if not self._heard and now - self._hello_at >= 1.0:
                self._send_hello()
            for ch, deadline in list(self._deadline.items()):
                if now >= deadline:
                    del self._deadline[ch]
                    self.levels[ch] = 0
                    self.expired.append(ch)
                    self._write(frames.encode_body(f"0 EXPIRED {ch}"))
            for ch, due in list(self._periods.items()):
                if now >= due:
                    self._periods[ch] = now + self._period_s[ch]
                    self._write(frames.encode_body(f"0 AIN {ch} {self.analog[ch]}"))

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 1024)
        except (BlockingIOError, OSError):
            return
        for frame in self._parser.feed(data):
            if isinstance(frame, Request):
                self._heard = True
                self._request(frame)

    def _request(self, req: Request) -> None:
        if self._last is not None and self._last[0] == req.seq:
            if self.answer:
                self._write(self._last[1])
            return
        body = self._execute(req)
        wire = frames.encode_body(f"{req.seq} {body}")
        self._last = (req.seq, wire)
        if self.answer:
            self._write(wire)

    def _execute(self, req: Request) -> str:
        cmd, args = req.command, req.args
        if cmd not in ("PING", "SET", "PWM", "STEP", "READ", "PERIOD", "STATUS"):
            return f"ERR unknown_command {cmd}"[:50]
        self.executed = (self.executed + 1) % 65536
        now = asyncio.get_running_loop().time()
        if cmd == "PING":
            return f"OK {self.executed}"
        if cmd in ("SET", "PWM", "STEP"):
            if len(args) != 3:
                return f"ERR bad_frame {cmd}"
            ch, value_text, ms_text = args
            if OUTPUTS.get(ch) != cmd:
                return f"ERR bad_channel {ch}"[:50]
            lo, hi = BOUNDS[cmd]
            try:
                value, ms = int(value_text), int(ms_text)
            except ValueError:
                return f"ERR bad_value {value_text}"[:50]
            if not lo <= value <= hi or not 1 <= ms <= 600000:
                return f"ERR bad_value {value_text}"[:50]
            self.levels[ch] = value
            if value:
                self._deadline[ch] = now + ms / 1000
            else:
                self._deadline.pop(ch, None)
            return "OK"
        if cmd == "READ":
            if len(args) != 1 or args[0] not in ANALOG:
                return f"ERR bad_channel {' '.join(args)}"[:50]
            return f"OK {args[0]} {self.analog[args[0]]}"
        if cmd == "PERIOD":
            if len(args) != 2 or args[0] not in ANALOG:
                return "ERR bad_channel " + (args[0] if args else "")
            ms = int(args[1]) if args[1].isdigit() else -1
            if ms != 0 and ms < 50:
                return f"ERR bad_value {args[1]}"[:50]
            if ms == 0:
                self._periods.pop(args[0], None)
            else:
                self._period_s[args[0]] = ms / 1000
                self._periods[args[0]] = now + ms / 1000
            return "OK"
        parts = [f"{ch}={v}/{max(0, int((self._deadline.get(ch, now) - now) * 1000))}"
                 for ch, v in self.levels.items()]
        return ("OK " + " ".join(parts))[:50]
