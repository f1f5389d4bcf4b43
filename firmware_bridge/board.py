"""A board as outputs and inputs: what the host wants each output to be, kept true on the board.

`want(channel, value, limit_s)` records the wanted value of an output
(`SET` level, `PWM` duty or `STEP` rate) and how long it may stay away from
its default; a sender task writes it to the board and refreshes it every
`max_ms / 3`, where `max_ms` is the board watchdog's time (`watchdog_s`, or
less when the output's own limit ends sooner, so the firmware enforces the
limit too). After a reset (a HELLO with a new boot id) or a reconnect, the
outputs still wanted and still within their limits are sent again; the
others stay at the board's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.frames import Ain, Expired, Hello
from firmware_bridge.transport import BoardNotConnected, BoardRefused, Transport
from lecis.clock import Clock
from lecis.errors import SettingInvalid

log = logging.getLogger("labedge.bridge")

DIGITAL = ("D2", "D4", "D7", "D8")
PWM = ("D3",)
STEPPER = ("S1",)
ANALOG = ("A0", "A1", "A2", "A3", "A4", "A5")
WATCHDOG_S = 2.0
MAX_MS = 600_000
CHANNEL = re.compile(r"^[A-Z][0-9]{1,2}$")
MIN_SEND_MS = 20  # less of a limit than this left: not worth switching on again
RESET_EVENTS = 3  # reset events within RESET_WINDOW_S before a boot loop is told once, then summed up
RESET_WINDOW_S = 10.0


def command_of(channel: str) -> str:
    """`SET`, `PWM` or `STEP`: by the channel's letter (`D3` is the Uno's PWM pin, `S` a stepper)."""
    if channel in PWM:
        return "PWM"
    if channel.startswith("S"):
        return "STEP"
    return "SET"


@dataclass
class Wanted:
    """One output as the host wants it. `until` is the monotonic time its limit ends (None: none)."""

    channel: str
    value: int
    until: float | None
    watchdog_s: float | None = None  # None: the board's
    version: int = 0
    sent_version: int = -1
    next_refresh: float = 0.0
    error: BoardRefused | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class BoardCounters:
    sent: int = 0
    refreshes: int = 0
    restored: int = 0
    expired: int = 0
    refused: int = 0


BoardEvent = Callable[[str, str, str], None]  # (level, code, message)


class Board:
    """The outputs and inputs of one board on one Transport, shared by every module on it."""

    def __init__(self, transport: Transport, clock: Clock, *, watchdog_s: float = WATCHDOG_S) -> None:
        if not 0.05 <= watchdog_s <= MAX_MS / 1000:
            raise SettingInvalid(f"watchdog_s must be from 0.05 to {MAX_MS // 1000} s, got {watchdog_s}")
        self.transport = transport
        self.clock = clock
        self.watchdog_s = watchdog_s
        self.counters = BoardCounters()
        self.outputs: dict[str, Wanted] = {}
        self.listeners: list[BoardEvent] = []
        self.ain_listeners: dict[str, list[Callable[[int], None]]] = {}
        self.expired_listeners: list[Callable[[str], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._epoch = 0  # one more at each reset or reconnect: an answer from before is no ack
        self._resets: list[float] = []  # when the recent reset events were told
        self._resets_untold = 0
        transport.on_hello = self._hello
        transport.on_frame = self._frame
        transport.on_link = self._link

    # ---- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Board:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        self.transport.start()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sender(), name="bridge sender")

    async def close(self) -> None:
        """Send every output to its default (best effort), then stop."""
        for wanted in self.outputs.values():
            self._set(wanted, 0, None)
        if self.transport.connected:
            with contextlib.suppress(TimeoutError, BoardNotConnected):
                await asyncio.wait_for(self._flush(), 0.5)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.transport.close()

    def _event(self, level: str, code: str, message: str) -> None:
        log.info("%s: %s", self.transport.port, message)
        for listener in list(self.listeners):
            try:
                listener(level, code, message)
            except Exception:  # a listener's bug must not stop the board's bookkeeping
                log.exception("bridge event listener failed")

    # ---- outputs ------------------------------------------------------------------------------
    def want(self, channel: str, value: int, limit_s: float | None,
             watchdog_s: float | None = None) -> Wanted:
        """Ask for `value` on `channel` for at most `limit_s` seconds (None: no host limit). Sync.

        `watchdog_s`: the firmware's time for this output (None: the board's `watchdog_s`).
        """
        wanted = self.outputs.get(channel)
        if wanted is None:
            if not CHANNEL.match(channel):
                raise SettingInvalid(f"channel {channel!r}: expected an Uno pin name such as D2, D3 or S1")
            wanted = self.outputs[channel] = Wanted(channel, 0, None, watchdog_s)
        until = None if limit_s is None or value == 0 else self.clock.monotonic() + limit_s
        self._set(wanted, value, until)
        return wanted

    def _set(self, wanted: Wanted, value: int, until: float | None) -> None:
        wanted.value, wanted.until = value, until
        wanted.version += 1
        wanted.error = None
        wanted.acked.clear()
        self._wake.set()

    async def confirm(self, wanted: Wanted, timeout_s: float) -> None:
        """Wait until the board acknowledged the latest value; BoardRefused / BoardNotConnected."""
        try:
            await asyncio.wait_for(wanted.acked.wait(), timeout_s)
        except TimeoutError:
            raise BoardNotConnected(self.transport.problem) from None
        if wanted.error is not None:
            raise wanted.error

    def _max_ms(self, wanted: Wanted, now: float) -> int:
        ms = (wanted.watchdog_s or self.watchdog_s) * 1000
        if wanted.until is not None:
            ms = min(ms, (wanted.until - now) * 1000)
        return max(1, min(MAX_MS, int(ms)))

    def _due(self, now: float) -> list[Wanted]:
        due = []
        for wanted in self.outputs.values():
            if wanted.error is not None:
                continue
            ending = wanted.until is not None and wanted.until - now < MIN_SEND_MS / 1000
            if wanted.value != 0 and ending:
                continue  # its limit ends now: the board's watchdog ends it too, nothing to send
            if wanted.sent_version != wanted.version or (wanted.value != 0 and now >= wanted.next_refresh):
                due.append(wanted)
        return due

    async def _sender(self) -> None:
        while True:
            if not self.transport.connected:
                await self._wait(None)
                continue
            now = self.clock.monotonic()
            due = self._due(now)
            if not due:
                await self._wait(self._next_wake(now))
                continue
            for wanted in due:
                try:
                    await self._send(wanted)
                except BoardNotConnected:
                    pass
                except Exception:  # a bug must not stop the refreshes of the other outputs
                    log.exception("%s: sending %s failed", self.transport.port, wanted.channel)
                    wanted.sent_version = wanted.version
                    await self._wait(0.1)

    def _next_wake(self, now: float) -> float | None:
        times = [w.next_refresh - now for w in self.outputs.values()
                 if w.value != 0 and w.error is None and w.sent_version == w.version
                 and not (w.until is not None and w.until - now < MIN_SEND_MS / 1000)]
        return max(0.0, min(times)) if times else None

    async def _wait(self, seconds: float | None) -> None:
        self._wake.clear()
        wake = asyncio.ensure_future(self._wake.wait())
        waits: list[asyncio.Future[Any]] = [wake]
        if seconds is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _send(self, wanted: Wanted) -> None:
        version, value, epoch = wanted.version, wanted.value, self._epoch
        refresh = wanted.sent_version == version
        sent_at, max_ms = self.clock.monotonic(), 1

        def args() -> tuple[str, ...]:
            # at each try: the board's time never outlasts what is left of the output's limit
            nonlocal sent_at, max_ms
            sent_at = self.clock.monotonic()
            max_ms = self._max_ms(wanted, sent_at)
            return wanted.channel, str(value), str(max_ms)

        try:
            await self.transport.request_built(command_of(wanted.channel), args)
        except BoardRefused as exc:
            self.counters.refused += 1
            if wanted.version == version and epoch == self._epoch:
                wanted.error = exc
                wanted.sent_version = version
                wanted.acked.set()
            return
        self.counters.sent += 1
        self.counters.refreshes += refresh
        if epoch != self._epoch:
            return  # answered by the board before it reset (or before a reconnect): sent again
        if wanted.version == version:
            wanted.sent_version = version
            wanted.next_refresh = sent_at + max_ms / 3000
            wanted.acked.set()

    async def _flush(self) -> None:
        for wanted in list(self.outputs.values()):
            if wanted.sent_version != wanted.version:
                await self._send(wanted)

    # ---- what the link tells ------------------------------------------------------------------
    def _resend_all(self, why: str, tell: bool = True) -> None:
        self._epoch += 1
        now = self.clock.monotonic()
        again = []
        for wanted in self.outputs.values():
            if wanted.value != 0 and wanted.error is None:
                if wanted.until is not None and wanted.until - now < MIN_SEND_MS / 1000:
                    wanted.value, wanted.until = 0, None  # its limit ran out meanwhile: it stays off
                    continue
                again.append(wanted.channel)
            wanted.sent_version = -1
        self.counters.restored += len(again)
        if again and tell:
            self._event("warning", "bridge_restore", f"{why}; outputs sent again: {', '.join(sorted(again))}")
        self._wake.set()

    def _hello(self, hello: Hello, connected: bool) -> None:
        if not connected:
            return
        # A board in a boot loop: the first resets are told, then one line per window with the count.
        now = self.clock.monotonic()
        self._resets = [t for t in self._resets if now - t < RESET_WINDOW_S]
        if len(self._resets) >= RESET_EVENTS:
            self._resets_untold += 1
            self._resend_all("", tell=False)
            return
        more, self._resets_untold = self._resets_untold, 0
        self._resets.append(now)
        looping = (f"; {more} more resets not told before (a boot loop? check its power and wiring)"
                   if more else "")
        if len(self._resets) == RESET_EVENTS and not more:
            looping = f"; {RESET_EVENTS} resets in {RESET_WINDOW_S:g} s: further ones are summed up"
        self._event("warning", "board_reset",
                    f"board on {self.transport.port} reset (new boot id {hello.boot_id}){looping}")
        self._resend_all(f"board on {self.transport.port} reset")

    def _link(self, up: bool, problem: str) -> None:
        if up:
            hello = self.transport.hello
            boot = hello.boot_id if hello is not None else "unknown"
            self._event("info", "board_connected",
                        f"board on {self.transport.port} connected (boot id {boot})")
            self._resend_all(f"board on {self.transport.port} connected")
        else:
            self._event("alarm", "board_lost", problem)
        self._wake.set()

    def _frame(self, frame: Ain | Expired) -> None:
        if isinstance(frame, Ain):
            for ain_listener in list(self.ain_listeners.get(frame.channel, [])):
                ain_listener(frame.raw)
            return
        self.counters.expired += 1
        wanted = self.outputs.get(frame.channel)
        if wanted is not None and wanted.value != 0 and wanted.sent_version == wanted.version:
            # The board's watchdog ended an output the host still wants: refreshes did not get
            # through in time. Sent again if its limit allows (the firmware's time was the shorter).
            wanted.sent_version = -1
            self._wake.set()
        for listener in list(self.expired_listeners):
            listener(frame.channel)

    # ---- inputs -------------------------------------------------------------------------------
    async def read(self, channel: str) -> int:
        if not CHANNEL.match(channel):
            raise SettingInvalid(f"channel {channel!r}: expected an analog input such as A0")
        ok = await self.transport.request("READ", channel)
        if len(ok.values) != 2 or ok.values[0] != channel or not ok.values[1].isdigit():
            raise BoardNotConnected(f"{self.transport.port}: READ {channel} answered {' '.join(ok.values)!r}")
        return int(ok.values[1])

    async def period(self, channel: str, ms: int) -> None:
        await self.transport.request("PERIOD", channel, str(ms))

    async def ping(self) -> int:
        ok = await self.transport.request("PING")
        return int(ok.values[0]) if ok.values and ok.values[0].isdigit() else -1
