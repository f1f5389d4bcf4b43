"""The serial link to one board: owns the port, one request at a time, retransmit, reconnect.

Opening an Uno's port resets it, so after opening the link waits for the
board's HELLO instead of sleeping. A request is sent, and sent again as the
very same frame when no answer comes in time (an adaptive wait from the measured
round trip, at most `timeout_s`), until `tries` tries waited `tries x timeout_s`;
answers to anything but the outstanding request are dropped (a duplicate
answer to a retransmit). A board that stops answering, or a port that goes
away, closes the link; `run()` opens it again with capped backoff. A HELLO
with a boot id other than the last one is a reset: `on_hello` hears of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge import frames
from firmware_bridge.frames import Ain, Err, Expired, Hello, Ok, Request
from lecis.clock import Clock, SystemClock
from lecis.errors import DeviceLost, LabedgeError

log = logging.getLogger("labedge.bridge")

BAUDRATE = 115200
PROTOCOL_VERSION = 1
TIMEOUT_S = 0.05  # the longest wait for an answer before sending again
MIN_TIMEOUT_S = 0.008  # the adaptive wait never goes below this (a 64-byte frame is 5.6 ms)
TRIES = 10  # 0.5 s: at 1 % bytes lost, an exchange fails ~30 % of tries; 10 in a row ~6e-6
HELLO_WAIT_S = 2.5  # the board repeats HELLO every second until it hears a request
INITIAL_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0

OpenSerial = Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class BoardNotConnected(DeviceLost):
    """No link to the board right now (port missing, board silent, or reconnecting)."""


class BoardRefused(LabedgeError):
    """The board answered `ERR <kind> <detail>`: it did not execute the request."""

    def __init__(self, request: str, kind: str, detail: str) -> None:
        super().__init__(f"the board refused {request!r}: {kind} {detail}".rstrip())
        self.kind = kind
        self.detail = detail


@dataclass
class LinkCounters:
    requests: int = 0
    retransmits: int = 0
    timeouts: int = 0  # requests given up after every try
    stale_answers: int = 0  # answers that were not for the outstanding request (duplicates)
    hellos: int = 0
    resets: int = 0  # HELLOs with a boot id other than the previous one
    connects: int = 0
    disconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


async def _open_pyserial(**kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    import serial_asyncio  # imported here: nothing opens at import time

    # exclusive: a second process (a second unit, `labedge bridge` by hand) cannot open the board too
    reader, writer = await serial_asyncio.open_serial_connection(exclusive=True, **kwargs)
    return reader, writer


def _open_problem(port: str, exc: Exception) -> str:
    """What to tell when the port does not open: in use, not a serial port, or missing."""
    text = str(exc)
    if "exclusively lock" in text or "Resource temporarily unavailable" in text:
        return (f"{port}: the port is in use by another program (a unit, or `labedge bridge` by hand); "
                "stop that one first")
    if "Inappropriate ioctl" in text or "Is a directory" in text:
        return f"{port}: is not a serial port ({text})"
    return f"{port}: cannot open the port ({text}); is the board plugged in?"


class Transport:
    """One board on one port. `async with Transport(...)` runs the link in the background."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = BAUDRATE,
        clock: Clock | None = None,
        open_serial: OpenSerial | None = None,
        timeout_s: float = TIMEOUT_S,
        tries: int = TRIES,
        hello_wait_s: float = HELLO_WAIT_S,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        on_hello: Callable[[Hello, bool], None] | None = None,
        on_frame: Callable[[Ain | Expired], None] | None = None,
        on_link: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.clock: Clock = clock or SystemClock()
        self._open = open_serial or _open_pyserial
        self.timeout_s = timeout_s
        self.tries = tries
        self.hello_wait_s = hello_wait_s
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_hello = on_hello
        self.on_frame = on_frame
        self.on_link = on_link
        self.counters = LinkCounters()
        self.parser = frames.Parser()
        self.hello: Hello | None = None
        self.problem = f"{port}: not opened yet"
        self._open_failing = True  # the problem says why the port does not open (or that it never did)
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._hello_seen = asyncio.Event()
        self._lock = asyncio.Lock()
        self._seq = 0
        self._waiting: tuple[int, asyncio.Future[Ok | Err]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._srtt: float | None = None  # smoothed round trip (s), from first-try answers only
        self._rttvar = 0.0

    # ---- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Transport:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"bridge {self.port}")

    async def close(self) -> None:
        task, self._task = self._task, None
        self.on_link = None  # a deliberate close is no loss to report
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_writer()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> None:
        """Return once the link is up; BoardNotConnected naming the problem after `timeout_s`."""
        if self._connected.is_set():
            return
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            raise BoardNotConnected(self.problem) from None

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def run(self) -> None:
        """Open, wait for HELLO, serve; on any loss reconnect with capped backoff. Runs until cancelled."""
        backoff = self.initial_backoff_s
        while True:
            try:
                reader, writer = await self._open(url=self.port, baudrate=self.baudrate)
            except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
                self._set_problem(_open_problem(self.port, exc))
                self._open_failing = True
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self._writer = writer
            if self._open_failing:  # a reason from an earlier handshake (protocol, silence) stays
                self.problem = f"{self.port}: opened; no answer from the board yet"
                self._open_failing = False
            self.parser = frames.Parser()
            self._hello_seen.clear()
            reading = asyncio.get_running_loop().create_task(self._read(reader))
            lost: asyncio.Future[Any] | None = None
            try:
                if await self._handshake_safely(reading):
                    backoff = self.initial_backoff_s
                    self._lost.clear()
                    self._connected.set()
                    self.counters.connects += 1
                    if self.on_link is not None:
                        self.on_link(True, "")
                    lost = asyncio.ensure_future(self._lost.wait())
                    await asyncio.wait([reading, lost], return_when=asyncio.FIRST_COMPLETED)
            finally:
                if lost is not None:
                    lost.cancel()
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reading
                was = self._connected.is_set()
                self._connected.clear()
                self._lost.set()
                self._drop_writer()
                if was:
                    self.counters.disconnects += 1
                    if self.on_link is not None:
                        self.on_link(False, self.problem)
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _handshake_safely(self, reading: asyncio.Task[None]) -> bool:
        try:
            return await self._handshake(reading)
        except Exception as exc:  # whatever a broken port raises, the link loop must go on
            log.exception("%s: handshake failed", self.port)
            self._set_problem(f"{self.port}: {type(exc).__name__}: {exc}")
            return False

    async def _handshake(self, reading: asyncio.Task[None]) -> bool:
        """HELLO within hello_wait_s (a board already running sends none), then always a PING.

        The PING also moves the board's memory of the last sequence number onto a
        request that does nothing, so a host restarted at a number the board
        remembers never has a real request answered from memory unexecuted.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hello_seen.wait(), self.hello_wait_s)
        # the last HELLO heard decides (a reflashed board boots, so its new HELLO comes in this wait)
        if self.hello is not None and self.hello.protocol != PROTOCOL_VERSION:
            self._set_problem(self._wrong_protocol(self.hello))
            return False
        try:
            await self._exchange("PING", lambda: ())
        except (BoardNotConnected, BoardRefused):
            if not reading.done():  # else the port went away, and the problem says so already
                self._set_problem(f"{self.port}: no answer to PING; is this a labedge board "
                                  f"at {self.baudrate} baud?")
            return False
        return True

    def _wrong_protocol(self, hello: Hello) -> str:
        return (f"{self.port}: the board speaks protocol {hello.protocol} (firmware {hello.firmware}); "
                f"this unit speaks {PROTOCOL_VERSION}: update one of them")

    def _set_problem(self, problem: str) -> None:
        if problem != self.problem:
            log.warning("%s", problem)
        self.problem = problem

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(BoardNotConnected(self.problem))

    # ---- receiving ----------------------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                try:
                    data = await reader.read(256)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    self._set_problem(f"{self.port}: the port went away ({exc})")
                    return
                if not data:
                    self._set_problem(f"{self.port}: the port closed (board unplugged?)")
                    return
                for frame in self.parser.feed(data):
                    self._dispatch(frame)
        finally:
            # Nothing more will come: the request waiting now fails at once, not after its tries.
            waiting = self._waiting
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(BoardNotConnected(self.problem))

    def _dispatch(self, frame: frames.Frame) -> None:
        if isinstance(frame, Hello):
            self.counters.hellos += 1
            new = self.hello is None or frame.boot_id != self.hello.boot_id
            if new and (self.hello is not None or self._connected.is_set()):  # a HELLO mid-link: a boot
                self.counters.resets += 1
                log.warning("%s: board reset (boot id %s -> %s)", self.port,
                            self.hello.boot_id if self.hello else "unknown", frame.boot_id)
            self.hello = frame
            self._hello_seen.set()
            if frame.protocol != PROTOCOL_VERSION:
                # reflashed with another protocol: drive nothing more; the handshake refuses it
                self._set_problem(self._wrong_protocol(frame))
                if self._connected.is_set():
                    self._lost.set()
                return
            if self.on_hello is not None and new:
                self.on_hello(frame, self._connected.is_set())
        elif isinstance(frame, (Ok, Err)):
            waiting = self._waiting
            if waiting is None or waiting[0] != frame.seq or waiting[1].done():
                self.counters.stale_answers += 1
                return
            waiting[1].set_result(frame)
        elif isinstance(frame, (Ain, Expired)):
            if self.on_frame is not None:
                self.on_frame(frame)
        # a Request from the board side is not for us: ignored

    # ---- requests -----------------------------------------------------------------------------
    async def request(self, command: str, *args: str) -> Ok:
        """Send one request and return its OK; BoardRefused on ERR, BoardNotConnected when lost."""
        if not self._connected.is_set():
            raise BoardNotConnected(self.problem)
        return await self._exchange(command, lambda: args)

    async def request_built(self, command: str, build: Callable[[], tuple[str, ...]]) -> Ok:
        """As `request`, with the arguments built at each try (under the link's lock, just before
        writing): an output's `max_ms` then counts from when the frame leaves, not from when it was
        queued behind another exchange or first sent. The seq stays the same, so the board executes
        at most one of the tries (PROTOCOL.md)."""
        if not self._connected.is_set():
            raise BoardNotConnected(self.problem)
        return await self._exchange(command, build)

    def retransmit_timeout(self) -> float:
        """Seconds to wait before sending again: srtt + 4 rttvar (as TCP) and at least 2 srtt,
        within 8 ms..timeout_s."""
        if self._srtt is None:
            return self.timeout_s
        return min(self.timeout_s, max(MIN_TIMEOUT_S, 2 * self._srtt, self._srtt + 4 * self._rttvar))

    def _rtt_sample(self, rtt: float) -> None:
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt

    async def _send_until_answered(self, wire_of: Callable[[], bytes], future: asyncio.Future[Ok | Err],
                                   command: str) -> Ok | Err:
        """The same frame again after each timeout (which grows 1.5x a try, up to timeout_s), until
        answered; lost after `tries` tries that together waited at least tries x timeout_s."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        wait = self.retransmit_timeout()
        attempt = 0
        while True:
            writer = self._writer
            if writer is None:
                raise BoardNotConnected(self.problem)
            if attempt:
                self.counters.retransmits += 1
            sent = loop.time()
            try:
                writer.write(wire_of())
            except Exception as exc:  # a transport already closed under us: the port is gone
                raise BoardNotConnected(f"{self.port}: cannot write to the port ({exc})") from None
            await asyncio.wait((future,), timeout=wait)
            if future.done():
                if attempt == 0:  # Karn: a retransmitted exchange says nothing about the round trip
                    self._rtt_sample(loop.time() - sent)
                return future.result()
            attempt += 1
            wait = min(self.timeout_s, wait * 1.5)
            if attempt >= self.tries and loop.time() - started >= self.tries * self.timeout_s:
                self.counters.timeouts += 1
                self._set_problem(f"{self.port}: the board did not answer {command} after {attempt} tries")
                self._lost.set()
                raise BoardNotConnected(self.problem)

    async def _exchange(self, command: str, build: Callable[[], tuple[str, ...]]) -> Ok:
        async with self._lock:
            self._seq = self._seq % frames.MAX_SEQ + 1
            seq, args = self._seq, build()
            frames.encode(Request(seq, command, args))  # a FrameError before anything is sent

            def wire_of() -> bytes:
                nonlocal args
                args = build()
                return frames.encode(Request(seq, command, args))

            loop = asyncio.get_running_loop()
            future: asyncio.Future[Ok | Err] = loop.create_future()
            self._waiting = (self._seq, future)
            self.counters.requests += 1
            try:
                answer = await self._send_until_answered(wire_of, future, command)
            finally:
                if self._waiting is not None and self._waiting[1] is future:
                    self._waiting = None
                if not future.done():
                    future.cancel()
        if isinstance(answer, Err):
            raise BoardRefused(" ".join((command, *args)), answer.kind, answer.detail)
        return answer
