"""Driver for a generic line instrument described entirely by its DCD (`driver: line`).

With a `query` the driver asks every `period_s` and reads one answer line;
without one the instrument streams lines by itself and every line is a
reading (a line is then expected within `period_s + timeout_s`). The DCD
`pattern`'s named groups are the readings.
"""

from __future__ import annotations

import re
from typing import Any

from edge.driver import CommandRun, DriverResources, ModuleHost
from edge.drivers.serial_instrument import SerialInstrumentDriver
from edge.line_parse import (
    PatternInvalid,
    ReadingInvalid,
    answer_matches,
    check_range,
    compile_pattern,
    parse_line,
    render_wire,
    shown,
)
from edge.serial_line import SerialTimeout, open_line
from lecis.dcd import Dcd
from lecis.driver_specs import LineSettings, settings_of
from lecis.errors import CommandFailed, DeviceError

MAX_TIMEOUTS = 3  # consecutive missing lines before the module goes to ERROR


class LineDriver(SerialInstrumentDriver):
    """A serial instrument that answers (or streams) one text line per reading."""

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        settings = settings_of(dcd, LineSettings)
        self.query = settings.query
        self.write_terminator = settings.write_terminator
        self.read_terminator = settings.read_terminator
        self.encoding = settings.encoding
        self.pattern_text = settings.pattern
        self._pattern: re.Pattern[str] | None = None
        self._timeouts = 0

    @property
    def _what(self) -> str:
        return f"the instrument on {self.port}"

    @property
    def _line_timeout(self) -> float:
        return self.timeout_s if self.query is not None else self.period_s + self.timeout_s

    # ---- life -------------------------------------------------------------------------------
    async def initialize(self) -> None:
        try:
            self._pattern = compile_pattern(self.pattern_text, self.dcd.readings)
        except PatternInvalid as exc:
            raise DeviceError("bad_dcd", f"{self.dcd.source}: settings.pattern: {exc}") from exc
        self._line = await open_line(
            self.resources, self.port, self.baudrate, clock=self.host.clock,
            terminator=self.read_terminator, encoding=self.encoding,
        )
        if self.query is None:
            return  # a streaming instrument shows it is alive by its lines, checked in run()
        try:
            async with self._lock:
                await self._ask(self.query)  # any answer will do: it proves the instrument listens
        except SerialTimeout as exc:
            await self.close()
            raise DeviceError(
                "no_response", f"{self._what} did not answer {self.query!r}: {exc.message}; check its power, "
                f"the cable and that it runs at {self.baudrate} baud",
            ) from exc
        except BaseException:
            await self.close()
            raise


    async def _ask(self, text: str) -> str:
        """Send `text` and return the next line (SerialTimeout if none comes)."""
        line = self._port()
        for early in line.buffered_lines():  # never taken as the answer to `text`
            if self.query is None:
                self._publish(early)  # a streamed reading
            else:
                self._warnings.warn("bad_data", f"{self._what} sent {shown(early)} unasked; ignored")
        await line.send(text + self.write_terminator)
        return await line.read_line(self.timeout_s)

    # ---- measuring ----------------------------------------------------------------------------
    @property
    def _paced(self) -> bool:
        return self.query is not None

    async def _measure(self) -> dict[str, float] | None:
        text = await self._next_line()
        return None if text is None else self._values(text)

    async def _next_line(self) -> str | None:
        try:
            if self.query is not None:
                text = await self._ask(self.query)
            else:
                text = await self._port().read_line(self._line_timeout)
        except SerialTimeout as exc:
            self._timeouts += 1
            if self._timeouts >= MAX_TIMEOUTS:
                raise DeviceError(
                    "no_response", f"{self._what} sent no line {self._timeouts} times in a row "
                    f"({self._line_timeout:g} s each); check its power and cable",
                ) from exc
            self._warnings.warn("timeout", f"{self._what}: {exc.message}")
            return None
        self._timeouts = 0
        return text

    def _parse(self, text: str) -> dict[str, float]:
        assert self._pattern is not None
        values = parse_line(self._pattern, text)
        check_range(values, self.dcd.readings)
        return values

    def _values(self, text: str) -> dict[str, float] | None:
        try:
            return self._parse(text)
        except ReadingInvalid as exc:
            self._warnings.warn(exc.code, f"{self._what}: {exc.message}")
            return None

    def _publish(self, text: str) -> None:
        """A reading that arrived while a command waited for its answer."""
        values = self._values(text)
        if values is not None:
            self._warnings.good_reading()
            self.host.reading(values)


    # ---- commands ---------------------------------------------------------------------------
    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        spec = self.dcd.command(name)
        if spec is None:
            raise CommandFailed(f"{self.dcd.module} has no device command {name!r} in {self.dcd.source}")
        wire = render_wire(spec, args)
        clock = self.host.clock
        async with self._lock:
            deadline = clock.monotonic() + self.timeout_s
            try:
                answer = await self._ask(wire)
                while self.query is None and self._is_reading(answer):
                    # A streaming instrument's readings may come before the answer: keep them.
                    self._publish(answer)
                    answer = await self._port().read_line(max(0.0, deadline - clock.monotonic()))
            except SerialTimeout as exc:
                raise CommandFailed(f"{self._what} did not answer {wire!r}: {exc.message}") from exc
        if not answer_matches(spec.expect, [answer]):
            raise CommandFailed(
                f"{self._what} answered {shown(answer)} to {wire!r}, not matching {spec.expect!r}"
            )
        return {"answer": [answer]}

    def _is_reading(self, text: str) -> bool:
        assert self._pattern is not None
        try:
            parse_line(self._pattern, text)
        except ReadingInvalid:
            return False
        return True
