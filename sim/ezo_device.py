"""An EZO circuit on a pseudo-terminal: the protocol engine, a pty link and optional faults.

    async with EzoSimulator("ph", tmp_path / "ph1") as sim:
        reader, writer = await serial_asyncio.open_serial_connection(url=sim.port, baudrate=9600)

Unplugging (`disconnect`) powers the circuit off with its adapter: the port
vanishes, commands in flight are lost. Plugging back in (`reconnect`) makes a
new pty at the same path, and the circuit's `*RE` waits for the first client
to open it (bytes sent to an unopened port would be lost on a real adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from lecis.clock import Clock, SystemClock
from lecis.errors import SettingInvalid
from sim.ezo_protocol import EzoCircuit, EzoOptions, Response
from sim.faults import FaultInjector, FaultPlan
from sim.process_model import ValueSource, WaterProcess
from sim.pty_link import LineSplitter, PtyLink

log = logging.getLogger("labedge.sim")


class EzoSimulator:
    """A simulated EZO `probe` ("ph", "do", "rtd") whose port is the symlink `link`."""

    def __init__(self, probe: str, link: Path | str, clock: Clock | None = None,
                 faults: FaultPlan | None = None, seed: int = 0, continuous: bool = True,
                 model: ValueSource | None = None) -> None:
        self.probe = probe
        self.port = str(link)
        self.clock: Clock = clock or SystemClock()
        self.model: ValueSource = model if model is not None else WaterProcess(self.clock, seed=seed)
        self.circuit = EzoCircuit(probe, self.model, self.clock, EzoOptions(continuous=continuous, seed=seed))
        self.faults = FaultInjector(faults) if faults is not None else None
        self.commands_seen: list[str] = []
        self._link: PtyLink | None = None
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._splitter = LineSplitter()
        self._waking = False
        self._changed = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._silent_until = -math.inf
        self._boot: Response = []
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._unplugging: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the port exists (between `reconnect` and `disconnect`)."""
        return self._link is not None

    @property
    def pty_name(self) -> str:
        """The pty the link points at now (changes at each reconnect), or "" while unplugged."""
        return self._link.slave_name if self._link is not None else ""

    @property
    def faults_injected(self) -> list[str]:
        return self.faults.injected if self.faults is not None else []

    async def __aenter__(self) -> EzoSimulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Publish the port and power the circuit up."""
        await self.reconnect()
        if self.faults is not None and "disconnect" in self.faults.plan:
            self._unplugging = asyncio.get_running_loop().create_task(self._unplug_now_and_then())

    async def stop(self) -> None:
        """Remove the port and stop every task; the simulator can be started again."""
        if self._unplugging is not None:
            self._unplugging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._unplugging
            self._unplugging = None
        await self.disconnect()

    async def disconnect(self) -> None:
        """Unplug: the pty closes, the symlink goes, a client's reads fail."""
        if self._link is None:
            return
        self._link.close()
        self._link = None
        tasks, self._connection_tasks = self._connection_tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inbox = asyncio.Queue()
        self._splitter = LineSplitter()
        self._waking = False
        log.info("%s: unplugged %s", self.probe, self.port)

    async def reconnect(self) -> None:
        """Plug back in: a new pty at the same path; `*RE` goes to the first client that opens it."""
        if self._link is not None:
            return
        link = PtyLink(self.port, on_data=self._inbox_put, on_peer=self._peer_arrived)
        link.open()
        self._link = link
        self._boot = self.circuit.power_up()
        self._spawn(self._serve())
        self._spawn(self._continuous())
        log.info("%s circuit on %s (%s)", self.probe, self.port, link.slave_name)

    def detach_probe(self) -> None:
        """Pull the RTD probe off its circuit: readings become -1023.000."""
        self._require_rtd()
        self.circuit.probe_attached = False

    def attach_probe(self) -> None:
        self._require_rtd()
        self.circuit.probe_attached = True

    def _require_rtd(self) -> None:
        if self.probe != "rtd":
            raise SettingInvalid(f"a detached probe is modelled for the rtd circuit only, not {self.probe}")

    # ---- inside ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._connection_tasks.add(task)
        task.add_done_callback(self._connection_tasks.discard)

    def _inbox_put(self, data: bytes) -> None:
        self._inbox.put_nowait(data)

    def _peer_arrived(self) -> None:
        boot, self._boot = self._boot, []
        if boot:
            self._spawn(self._emit(boot))

    async def _serve(self) -> None:
        while True:
            chunk = await self._inbox.get()
            if self.circuit.asleep and not self._waking:
                # Any byte wakes the circuit; the line it belongs to is not obeyed.
                self._waking = True
                self._changed.set()
                await self._emit(self.circuit.wake())
            for line in self._splitter.feed(chunk):
                self.commands_seen.append(line)
                if self._waking:
                    self._waking = False
                    continue
                await self._answer(line)
            if not self._splitter.pending:
                self._waking = False

    async def _answer(self, line: str) -> None:
        if self.faults is not None:
            now = self.clock.monotonic()
            if now < self._silent_until:
                return
            silence = self.faults.silence()
            if silence:
                self._silent_until = now + silence
                return
        response = self.circuit.handle(line)
        self._changed.set()  # the continuous schedule may have moved
        await self._emit(response)

    async def _emit(self, response: Response) -> None:
        for delay, text in response:
            if delay > 0:
                await self.clock.sleep(delay)
            await self._write_line(text)

    async def _write_line(self, text: str) -> None:
        chunks = self.faults.outgoing(text) if self.faults is not None else [(0.0, (text + "\r").encode())]
        async with self._write_lock:  # a late half-line keeps the line after it waiting, as on a wire
            for delay, data in chunks:
                if delay > 0:
                    await self.clock.sleep(delay)
                if self._link is not None:
                    self._link.write(data)

    async def _continuous(self) -> None:
        while True:
            self._changed.clear()
            wait = self.circuit.continuous_wait()
            if wait is None:
                await self._changed.wait()
            elif wait > 0:
                await self._sleep_unless_changed(wait)
            else:
                line = self.circuit.continuous_tick()
                if line is not None:
                    await self._write_line(line)

    async def _sleep_unless_changed(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    async def _unplug_now_and_then(self) -> None:
        assert self.faults is not None
        while (timing := self.faults.next_disconnect()) is not None:
            every, down = timing
            await self.clock.sleep(every)
            self.faults.injected.append(f"disconnect for {down:g} s")
            await self.disconnect()
            await self.clock.sleep(down)
            await self.reconnect()
