"""What a module driver is, and what it may use from the unit process.

A driver owns one device (a serial instrument, a GPIO output). The module
around it (`edge.slm.Module`) owns the LECIS state, the command checks and
the replies; the driver only talks to the device. Drivers never publish:
they hand readings, events and output changes to their `ModuleHost`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from lecis.clock import Clock
from lecis.dcd import Dcd
from lecis.errors import LabedgeError

if TYPE_CHECKING:
    from edge.durable import DurableState


@dataclass(frozen=True)
class Reading:
    ts: datetime
    values: dict[str, float]


class ModuleHost(Protocol):
    """The unit-side services a driver may use."""

    unit: str
    clock: Clock

    def reading(self, values: dict[str, float], ts: datetime | None = None) -> None:
        """Record one reading (stored in the outbox, then published on `M/data`)."""

    def event(self, level: str, code: str, message: str) -> None:
        """Record an event (`info`, `warning` or `alarm`), published on `M/event`."""

    def outputs_changed(self) -> None:
        """The driver's outputs changed; the retained `M/state` is published again."""

    def latest(self, module: str) -> Reading | None:
        """The last reading of another module of this unit, or None."""


class CommandAborted(LabedgeError):
    """The running command was aborted (ABORT, ESTOP, lease loss, shutdown)."""


class CommandRun(Protocol):
    """Handle a driver uses while one of its timed commands runs."""

    command_id: str

    async def wait(self, seconds: float) -> float:
        """Sleep `seconds` of running time; time spent PAUSED does not count.

        Returns the running time actually spent (less than `seconds` when the
        command was cut short, e.g. by `finish()`). Raises CommandAborted when
        the command is aborted.
        """

    def finish(self, reason: str) -> None:
        """End the wait early and successfully (a safety limit was reached)."""


@dataclass
class DriverResources:
    """Hardware handed to drivers, so tests and the lab can pass simulators in.

    `pin_factory` is a gpiozero pin factory or None for gpiozero's own choice
    (which honours GPIOZERO_PIN_FACTORY). `open_serial` opens a serial port and
    returns (reader, writer) like `serial_asyncio.open_serial_connection`.
    `durable` keeps what a limit needs across restarts of the unit process.
    """

    pin_factory: Any = None
    open_serial: Callable[..., Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    durable: DurableState | None = None  # what must survive restarts (pump volume); None: memory only


class Driver(abc.ABC):
    """Base of every module driver."""

    #: Device commands that take time: the module goes BUSY and replies
    #: accepted, running, then done or failed.
    timed_commands: frozenset[str] = frozenset()

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        self.dcd = dcd
        self.host = host
        self.resources = resources

    @abc.abstractmethod
    async def initialize(self) -> None:
        """Open and check the device (INIT). Raise DeviceError when it is not usable."""

    async def run(self) -> None:
        """Background work while the module is up (instruments measure here).

        Returns only when the driver has nothing to do in the background.
        Raise DeviceError (or DeviceLost) when the device fails: the module
        goes to ERROR and the unit re-initializes the driver with backoff.
        """

    def check(self, name: str, args: dict[str, Any]) -> None:
        """Checks beyond the DCD schema (e.g. a dose without calibration).

        Raise CommandStateForbidden or CommandInvalid; called before anything moves.
        """

    @abc.abstractmethod
    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        """Carry out a device command whose arguments are already validated.

        Return the reply's `result`. Raise CommandFailed or DeviceError when it cannot be done.
        """

    def pause(self) -> None:
        """The running timed command was paused: put outputs to rest (sync, immediate)."""

    def resume(self) -> None:
        """The paused command resumes: restore what pause() took away."""

    def safe(self) -> None:
        """Drive every output to its safe value now (sync: used by ESTOP and on exit)."""

    def outputs(self) -> dict[str, Any]:
        """Current outputs for `M/state` (e.g. {"on": false, "speed": 0.0})."""
        return {}

    async def close(self) -> None:
        """Release the device (port, pins). Outputs are already safe."""
