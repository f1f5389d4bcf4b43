"""One exception root for labedge, with leaves named subsystem + condition."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class LabedgeError(Exception):
    """Root of every error labedge raises on purpose."""


class ErrorKind(str, Enum):
    """Why a command was rejected or failed (docs/contract.md, reply `error.kind`)."""

    UNKNOWN_COMMAND = "unknown_command"
    VALIDATION = "validation"
    STATE = "state"
    DENIED = "denied"
    EXECUTION = "execution"


class CommandRejected(LabedgeError):
    """A command that must not run; becomes a `rejected` reply."""

    def __init__(self, kind: ErrorKind, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param

    def to_error(self) -> dict[str, str | None]:
        return {"kind": self.kind.value, "param": self.param, "message": self.message}


class CommandUnknown(CommandRejected):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.UNKNOWN_COMMAND, message)


class CommandInvalid(CommandRejected, ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(ErrorKind.VALIDATION, message, param)


class CommandStateForbidden(CommandRejected):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.STATE, message)


class LeaseDenied(CommandRejected):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.DENIED, message)


class CommandFailed(LabedgeError):
    """A command that started but could not finish; becomes a `failed` reply."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_error(self) -> dict[str, str | None]:
        return {"kind": ErrorKind.EXECUTION.value, "param": self.param, "message": self.message}


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a human-edited file, located precisely."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(LabedgeError):
    """A unit config or DCD that cannot be used; lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class DcdError(ConfigError):
    """A Device Capability Dataset that cannot be used."""


class DeviceError(LabedgeError):
    """An instrument or output misbehaved; the module goes to ERROR with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DeviceLost(DeviceError, ConnectionError):
    """The device stopped answering or its port vanished."""

    def __init__(self, message: str) -> None:
        super().__init__("device_lost", message)


class WireFormatError(LabedgeError, ValueError):
    """A payload without the shape docs/contract.md gives it; `field` names where (`readings[2].ts`)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


class WireEncodeError(LabedgeError, ValueError):
    """A message that cannot be written as contract JSON (a NaN, a value JSON has no form for)."""


class SettingInvalid(LabedgeError, ValueError):
    """A value handed to a constructor or function is outside what it accepts; the message says what fits."""


class TimestampInvalid(LabedgeError, ValueError):
    """A timestamp that is not UTC ISO 8601 with milliseconds and `Z`."""
