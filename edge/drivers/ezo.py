"""Driver for EZO-class pH, dissolved oxygen and RTD circuits on a serial port (`driver: ezo`).

One asyncio.Lock guards the port: a reading (`T,…` then `R`) and a device
command never interleave on the wire. Bad answers become warning events and
no reading; only a lost port, a circuit that stops answering or the wrong
circuit on the port end `run()` (the unit then retries with backoff).
"""

from __future__ import annotations

import math
from typing import Any

from edge.driver import CommandRun, DriverResources, ModuleHost
from edge.drivers.serial_instrument import SerialInstrumentDriver
from edge.ezo_parse import (
    DEVICE_TYPES,
    DO_OUTPUT_ORDER,
    LineKind,
    ReadingInvalid,
    classify,
    parse_info,
    parse_reading,
)
from edge.line_parse import answer_matches, check_range, render_wire, shown
from edge.serial_line import SerialTimeout, open_line
from lecis.dcd import Dcd
from lecis.driver_specs import EzoSettings, settings_of
from lecis.errors import CommandFailed, DeviceError, LabedgeError

MAX_TIMEOUTS = 3  # consecutive unanswered readings before the module goes to ERROR
TEMP_STEP_C = 0.1  # resend temperature compensation when the source moved this much
SETUP_ATTEMPTS = 3  # a circuit that restarts while being set up gets this many tries


class EzoRefused(LabedgeError):
    """The circuit answered `*ER`."""


class EzoRestarted(LabedgeError):
    """The circuit sent `*RE` or `*RS` (`code`): it rebooted and is in continuous mode again."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class EzoSilent(LabedgeError):
    """No `*OK` (or `*ER`) came back in time."""


class EzoDriver(SerialInstrumentDriver):
    """An Atlas Scientific EZO circuit: probe `ph`, `do` or `rtd` from the DCD settings."""

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        settings = settings_of(dcd, EzoSettings)
        self.probe = settings.probe
        self.temperature_source = settings.temperature_source
        self.do_outputs = settings.do_outputs
        self.firmware: str | None = None  # as the circuit reports it to `i`
        self._sent_temp: float | None = None
        self._timeouts = 0

    @property
    def _what(self) -> str:
        return f"the {DEVICE_TYPES[self.probe]} circuit on {self.port}"

    # ---- life -------------------------------------------------------------------------------
    async def initialize(self) -> None:
        self._line = await open_line(
            self.resources, self.port, self.baudrate, clock=self.host.clock, terminator="\r"
        )
        try:
            async with self._lock:
                await self._setup()
        except BaseException:
            await self.close()
            raise

    async def _setup(self) -> None:
        """Continuous mode off, response codes on, right circuit, outputs and scale as the DCD says."""
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                await self._setup_once()
                return
            except EzoRestarted:
                if attempt == SETUP_ATTEMPTS:
                    raise DeviceError(
                        "device_restarting", f"{self._what} restarted {attempt} times while being set up; "
                        "check its power supply",
                    ) from None

    async def _setup_once(self) -> None:
        try:
            try:
                # Continuous readings sent before this *OK are dropped by _command.
                await self._command("C,0", collect=False)
            except EzoSilent:
                pass  # response codes may be off (`*OK,0`): nothing answers C,0 until they are on again
            await self._command("*OK,1", collect=False)
            info = await self._command("i", answer="?I,")
            device_type, self.firmware = parse_info(info[0])
            if device_type.upper() != DEVICE_TYPES[self.probe].upper():
                raise DeviceError(
                    "wrong_device", f"port {self.port} answers as a {device_type} circuit "
                    f"but the DCD says probe {self.probe}",
                )
            if self.probe == "do":
                # Outputs on before outputs off: a circuit may refuse to turn its last output off.
                on = [output for output, _ in DO_OUTPUT_ORDER if output in self.do_outputs]
                off = [output for output, _ in DO_OUTPUT_ORDER if output not in self.do_outputs]
                for output in on:
                    await self._command(f"O,{output},1", collect=False)
                for output in off:
                    await self._command(f"O,{output},0", collect=False)
            if self.probe == "rtd":
                await self._command("S,c", collect=False)
        except EzoSilent as exc:
            raise DeviceError(
                "no_response", f"{exc}; check its power, the TX/RX wiring and that it runs at "
                f"{self.baudrate} baud",
            ) from exc
        except (EzoRefused, ReadingInvalid) as exc:
            raise DeviceError("device_error", f"{self._what} could not be set up: {exc}") from exc
        self._sent_temp = None  # a restarted circuit forgot its temperature compensation
        self._timeouts = 0

    # ---- wire -------------------------------------------------------------------------------

    async def _command(self, text: str, answer: str | None = None, collect: bool = True) -> list[str]:
        """Send `text`, return the lines before its `*OK` (response codes left out).

        With `answer` (a prefix such as `?I,`), lines before the answer are
        dropped: they are leftovers of earlier commands or continuous mode.
        With `collect` False every line but the codes is dropped.
        Raises EzoSilent, EzoRefused, EzoRestarted or DeviceLost.
        """
        line = self._port()
        clock = self.host.clock
        await line.send(text + "\r")
        deadline = clock.monotonic() + self.timeout_s
        lines: list[str] = []
        while True:
            try:
                got = classify(await line.read_line(max(0.0, deadline - clock.monotonic())))
            except SerialTimeout as exc:
                partial = f"; it sent only {shown(exc.partial)}" if exc.partial else ""
                raise EzoSilent(
                    f"{self._what} did not answer {text!r} within {self.timeout_s:g} s{partial}"
                ) from exc
            code = got.code
            if code in ("*RE", "*RS"):
                raise EzoRestarted(f"{self._what} restarted ({code})", code)
            if answer is not None and not lines:
                if got.kind is LineKind.ANSWER and got.text.upper().startswith(answer):
                    lines.append(got.text)
                continue
            if collect and got.kind is not LineKind.CODE:
                lines.append(got.text)  # garbage too (even with a code glued on): the caller rejects it
            if code == "*OK":
                return lines
            if code == "*ER":
                raise EzoRefused(f"{self._what} answered *ER to {text!r}")
            if code in ("*OV", "*UV"):
                self._warnings.warn("supply_voltage", f"{self._what} reports {code}: check its supply")

    # ---- measuring ----------------------------------------------------------------------------
    async def _measure(self) -> dict[str, float] | None:
        try:
            await self._compensate()
            lines = await self._command("R")
        except EzoSilent as exc:
            self._timeouts += 1
            if self._timeouts >= MAX_TIMEOUTS:
                raise DeviceError(
                    "no_response", f"{self._what} left {self._timeouts} readings in a row unanswered "
                    f"({self.timeout_s:g} s each); check its power and wiring",
                ) from exc
            self._warnings.warn("timeout", str(exc))
            return None
        except EzoRefused as exc:
            self._timeouts = 0
            self._warnings.warn("device_error", str(exc))
            return None
        except EzoRestarted as exc:
            self.host.event("info", "device_restarted", f"{exc}; setting it up again")
            await self._setup()
            return None
        self._timeouts = 0
        try:
            values = parse_reading(self.probe, lines, self.do_outputs)
            check_range(values, self.dcd.readings)
        except ReadingInvalid as exc:
            self._warnings.warn(exc.code, f"{self._what}: {exc.message}")
            return None
        return values

    async def _compensate(self) -> None:
        """Send `T,<°C>` when the temperature source moved by TEMP_STEP_C since last sent."""
        if self.probe == "rtd" or not self.temperature_source:
            return
        latest = self.host.latest(self.temperature_source)
        temp = latest.values.get("temp") if latest is not None else None
        if temp is None or not math.isfinite(temp):
            return
        if self._sent_temp is not None and abs(temp - self._sent_temp) < TEMP_STEP_C - 1e-9:
            return
        try:
            await self._command(f"T,{temp:.1f}")
        except EzoRefused as exc:
            self._warnings.warn(
                "device_error", f"{exc}; readings stay compensated for the last temperature sent"
            )
            return
        self._sent_temp = temp


    # ---- commands ---------------------------------------------------------------------------
    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        spec = self.dcd.command(name)
        if spec is None:
            raise CommandFailed(f"{self.dcd.module} has no device command {name!r} in {self.dcd.source}")
        wire = render_wire(spec, args)
        async with self._lock:
            try:
                lines = await self._command(wire)
            except EzoSilent as exc:
                raise CommandFailed(str(exc)) from exc
            except EzoRefused as exc:
                raise CommandFailed(f"the circuit answered *ER to {wire!r}") from exc
            except EzoRestarted as exc:
                self.host.event("info", "device_restarted", f"{exc}; setting it up again")
                await self._setup()
                if spec.expect is not None and answer_matches(spec.expect, [exc.code]):
                    return {"answer": [exc.code]}  # a restart was the point (e.g. `Factory`, expect `\*RS`)
                raise CommandFailed(f"{exc} while running {wire!r}; it is set up again") from exc
        if not answer_matches(spec.expect, [*lines, "*OK"]):
            seen = ", ".join(shown(line) for line in lines) or "only *OK"
            raise CommandFailed(f"{self._what} answered {seen} to {wire!r}, not matching {spec.expect!r}")
        return {"answer": lines}
