"""A board in Python behind a pseudo-terminal: PROTOCOL.md as the firmware implements it.

For tests of the host logic and for `labedge lab` where simavr is not
installed; the acceptance tests run the real firmware in simavr instead, and
tests/firmware_bridge/test_protocol_conformance.py runs the same checks against
both. The receiver and the command handling follow firmware/src/frame.c and
commands.c byte for byte: the same counters, the same answers, the same cuts.
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

OUTPUTS = {"D2": "SET", "D4": "SET", "D7": "SET", "D8": "SET", "D3": "PWM", "S1": "STEP"}
ANALOG = tuple(f"A{i}" for i in range(6))
VALUE = {"SET": ("level", 1), "PWM": ("duty", 255), "STEP": ("rate", 2000)}
FRAME_MAX = frames.MAX_FRAME
BODY_MAX = FRAME_MAX - 7  # `$` + body + `*` + 4 hex digits + `\n`
MAX_MS = 600_000
PERIOD_MIN_MS = 50
MAX_FIELDS = 6


def parse_u32(text: str, limit: int) -> int | None:
    """As the firmware's parse_u32: 1..7 ASCII digits (leading zeros allowed), at most `limit`."""
    if not 1 <= len(text) <= 7 or any(c not in "0123456789" for c in text):
        return None
    value = int(text)
    return value if value <= limit else None


def parse_i32(text: str, limit: int) -> int | None:
    """An optional `-` then parse_u32 (so `-0` is 0, `+1` is refused)."""
    negative = text.startswith("-")
    value = parse_u32(text[1:] if negative else text, limit)
    return None if value is None else (-value if negative else value)


def split(body: str) -> list[str] | None:
    """Fields separated by exactly one space; None when a field is empty."""
    fields = body.split(" ")
    return None if any(not f for f in fields) else fields


@dataclass
class Receiver:
    """frame.c's byte receiver: the same states, the same counters."""

    bad_crc: int = 0
    bad_frame: int = 0
    overlong: int = 0
    _state: str = "wait"  # wait, body, crc, lf
    _count: int = 0
    _body: bytearray = field(default_factory=bytearray)
    _crc: str = ""

    def byte(self, c: int) -> str | None:
        if c == frames.START:
            if self._state != "wait":
                self.bad_frame += 1
            self._state, self._count, self._body = "body", 1, bytearray()
            return None
        if self._state == "wait":
            return None
        self._count += 1
        if self._count > FRAME_MAX:
            self.overlong += 1
            self._state = "wait"
            return None
        if self._state == "body":
            if c == frames.END_BODY:
                self._state, self._crc = "crc", ""
            elif c < 0x20 or c > 0x7E:
                self.bad_frame += 1
                self._state = "wait"
            else:
                self._body.append(c)
            return None
        if self._state == "crc":
            if chr(c) not in "0123456789ABCDEF":
                self.bad_frame += 1
                self._state = "wait"
                return None
            self._crc += chr(c)
            if len(self._crc) == 4:
                self._state = "lf"
            return None
        if c == 0x0D:
            return None
        self._state = "wait"
        if c != frames.NEWLINE:
            self.bad_frame += 1
            return None
        if frames.crc16(bytes(self._body)) != int(self._crc, 16):
            self.bad_crc += 1
            return None
        return self._body.decode("ascii")


@dataclass
class FakeBoard:
    """Runs in the caller's event loop; `levels` shows what the pins would be."""

    link: Path | None = None
    levels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTPUTS, 0))
    analog: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANALOG, 0))
    boot_id: str = ""
    executed: int = 0
    duplicates: int = 0
    expired: list[str] = field(default_factory=list)
    answer: bool = True  # False: a board that has hung (hears, answers nothing)
    protocol: int = 1
    _deadline: dict[str, float] = field(default_factory=dict)
    _last: tuple[int, bytes] | None = None
    _heard: bool = False
    _master: int | None = None
    _slave: int | None = None
    _rx: Receiver = field(default_factory=Receiver)
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
        """Reboot: outputs to default, memory and counters empty, a new boot id, HELLO again."""
        self._boot()

    def _boot(self) -> None:
        self.levels = dict.fromkeys(OUTPUTS, 0)
        self._deadline.clear()
        self._periods.clear()
        self.boot_id = secrets.token_hex(4).upper()
        self.executed = self.duplicates = 0
        self._rx = Receiver()
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
            await asyncio.sleep(0.002)
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
        for byte in data:
            body = self._rx.byte(byte)
            if body is not None:
                self._request(body)

    def _request(self, body: str) -> None:
        """commands_handle(): not a request -> bad_frame; the last number again -> from memory."""
        fields = split(body)
        seq = parse_u32(fields[0], 255) if fields is not None and len(fields) >= 2 else None
        if fields is None or seq is None or seq == 0:
            self._rx.bad_frame += 1
            return
        self._heard = True
        if self._last is not None and self._last[0] == seq:
            self.duplicates = (self.duplicates + 1) % 65536
            if self.answer:
                self._write(self._last[1])
            return
        self.executed = (self.executed + 1) % 65536  # this request included, whatever its answer
        wire = frames.encode_body(f"{seq} {self._execute(fields)}"[:BODY_MAX])
        self._last = (seq, wire)
        if self.answer:
            self._write(wire)

    def _execute(self, f: list[str]) -> str:
        cmd, now = f[1], asyncio.get_running_loop().time()
        if cmd == "PING":
            return f"OK {self.executed}" if len(f) == 2 else "ERR bad_frame PING"
        if cmd in VALUE:
            if len(f) != 5:
                return f"ERR bad_frame {cmd}"
            ch = f[2]
            if OUTPUTS.get(ch) != cmd:
                return f"ERR bad_channel {ch}"
            name, limit = VALUE[cmd]
            value = parse_i32(f[3], limit) if cmd == "STEP" else parse_u32(f[3], limit)
            if value is None:
                return f"ERR bad_value {name}"
            ms = parse_u32(f[4], MAX_MS)
            if ms is None or ms < 1:
                return "ERR bad_value max_ms"
            self.levels[ch] = value
            self._deadline.pop(ch, None)
            if value:
                self._deadline[ch] = now + (ms + 1) / 1000
            return "OK"
        if cmd == "READ":
            if len(f) != 3:
                return "ERR bad_frame READ"
            if f[2] not in ANALOG:
                return f"ERR bad_channel {f[2]}"
            return f"OK {f[2]} {self.analog[f[2]]}"
        if cmd == "PERIOD":
            if len(f) != 4:
                return "ERR bad_frame PERIOD"
            if f[2] not in ANALOG:
                return f"ERR bad_channel {f[2]}"
            ms = parse_u32(f[3], 60000)
            if ms is None or (ms != 0 and ms < PERIOD_MIN_MS):
                return "ERR bad_value ms"
            if ms == 0:
                self._periods.pop(f[2], None)
            else:
                self._period_s[f[2]] = ms / 1000
                self._periods[f[2]] = now + ms / 1000
            return "OK"
        if cmd == "STATUS":
            return self._status(f, now)
        if cmd == "STATS":
            if len(f) != 2:
                return "ERR bad_frame STATS"
            values = (self._rx.bad_crc, self._rx.bad_frame, self._rx.overlong, self.duplicates, 0)
            return "OK " + " ".join(str(v % 65536) for v in values)
        return f"ERR unknown_command {cmd}"

    def _item(self, ch: str, now: float) -> str:
        left = self._deadline.get(ch)
        ms_left = 0 if left is None or now >= left else int((left - now) * 1000)
        return f" {ch}={self.levels[ch]}/{ms_left}"

    def _status(self, f: list[str], now: float) -> str:
        if len(f) > 3:
            return "ERR bad_frame STATUS"
        if len(f) == 3:
            return f"OK{self._item(f[2], now)}" if f[2] in OUTPUTS else f"ERR bad_channel {f[2]}"
        answer, room = "OK", BODY_MAX - len(f[0]) - 1
        names = list(OUTPUTS)
        for i, ch in enumerate(names):
            item = self._item(ch, now)
            reserve = 0 if i == len(names) - 1 else 2
            if len(answer) + len(item) + reserve > room:
                return answer + " +"
            answer += item
        return answer
