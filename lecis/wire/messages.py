"""The contract's messages as frozen dataclasses, each with `to_json()` and `from_json()`.

`from_json` takes the decoded JSON value and raises WireFormatError naming the
first bad field; unknown fields are ignored, as docs/contract.md asks of readers.
`to_json` gives the dict `lecis.wire.encode` turns into bytes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, cast

from lecis.commands import ReplyStatus, reply_payload
from lecis.errors import ErrorKind, WireFormatError
from lecis.states import Control, LecisState
from lecis.wire.fields import Obj, join, number_at

UNIT_STATES = ("init", "ready", "disconnected", "lost")
EVENT_LEVELS = ("info", "warning", "alarm")
BUTTONS = ("start", "stop")
BUTTON_ACTIONS = ("pressed", "held")
SESSION_STATES = ("open", "closing", "closed", "error")
FAILED_STATUSES = frozenset({ReplyStatus.REJECTED, ReplyStatus.FAILED})


class Message(abc.ABC):
    """A contract message: `to_json()` for encoding, `from_json()` for decoding."""

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The payload as a JSON-ready dict."""

    @classmethod
    @abc.abstractmethod
    def from_json(cls, value: Any) -> Message:
        """Decode a parsed payload; WireFormatError naming the first bad field."""


class UnitStateName(str, Enum):
    INIT = "init"
    READY = "ready"
    DISCONNECTED = "disconnected"
    LOST = "lost"


@dataclass(frozen=True)
class UnitState(Message):
    """`lab/U/$state`."""

    state: UnitStateName
    boot: str
    ts: str

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "boot": self.boot, "ts": self.ts}

    @classmethod
    def from_json(cls, value: Any) -> UnitState:
        o = Obj(value)
        return cls(o.enum("state", UnitStateName), o.string("boot", nonempty=True), o.ts("ts"))


@dataclass(frozen=True)
class StateError:
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class RunningCommand:
    """The command a BUSY or PAUSED module is running (`command` of `M/state`)."""

    id: str
    cmd: str


@dataclass(frozen=True)
class ModuleState(Message):
    """`lab/U/M/state`."""

    lecis: LecisState
    control: Control
    ts: str
    outputs: dict[str, Any] = field(default_factory=dict)
    error: StateError | None = None
    command: RunningCommand | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lecis": self.lecis.value, "control": self.control.value, "outputs": self.outputs,
            "error": None if self.error is None else self.error.to_json(), "ts": self.ts,
        }
        if self.command is not None:
            out["command"] = {"id": self.command.id, "cmd": self.command.cmd}
        return out

    @classmethod
    def from_json(cls, value: Any) -> ModuleState:
        o = Obj(value)
        error = o.obj("error", nullable=True)
        command = o.obj("command", nullable=True, default=None)
        return cls(
            o.enum("lecis", LecisState), o.enum("control", Control), o.ts("ts"), o.mapping("outputs"),
            None if error is None else StateError(error.string("code"), error.string("message")),
            None if command is None else RunningCommand(command.string("id"), command.string("cmd")),
        )


@dataclass(frozen=True)
class Reading:
    ts: str
    values: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "values": self.values}

    @classmethod
    def from_obj(cls, o: Obj) -> Reading:
        ts = o.ts("ts")
        values = o.obj("values")
        if not values.value:
            raise o.fail("values", "must name at least one value")
        return cls(ts, {k: number_at(v, values.field(k)) for k, v in values.value.items()})


@dataclass(frozen=True)
class Data(Message):
    """`lab/U/M/data`: readings with the module's `seq`; `hist` when sent from the backlog."""

    seq: int
    readings: tuple[Reading, ...]
    hist: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hist": self.hist, "readings": [r.to_json() for r in self.readings]}

    @classmethod
    def from_json(cls, value: Any) -> Data:
        o = Obj(value)
        seq, hist = o.integer("seq"), o.boolean("hist")
        readings = o.array("readings", nonempty=True)
        return cls(seq, tuple(Reading.from_obj(Obj(r, join("readings", i))) for i, r in enumerate(readings)),
                   hist)


@dataclass(frozen=True)
class Event(Message):
    """`lab/U/M/event`."""

    seq: int
    ts: str
    level: Literal["info", "warning", "alarm"]
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "level": self.level, "code": self.code,
                "message": self.message}

    @classmethod
    def from_json(cls, value: Any) -> Event:
        o = Obj(value)
        return cls(o.integer("seq"), o.ts("ts"), o.choice("level", EVENT_LEVELS),
                   o.string("code", nonempty=True), o.string("message"))


@dataclass(frozen=True)
class ReplyError:
    kind: ErrorKind
    message: str
    param: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind.value, "param": self.param, "message": self.message}


@dataclass(frozen=True)
class Reply(Message):
    """`M/reply` and `$reply`; `id` is null when the command's id could not be read."""

    id: str | None
    status: ReplyStatus
    ts: str
    error: ReplyError | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in (ReplyStatus.DONE, ReplyStatus.FAILED, ReplyStatus.REJECTED)

    def to_json(self) -> dict[str, Any]:
        error = None if self.error is None else self.error.to_json()
        return reply_payload(self.id, self.status, self.ts, error, self.result)

    @classmethod
    def from_json(cls, value: Any) -> Reply:
        o = Obj(value)
        command_id = o.string("id", nullable=True)
        status = o.enum("status", ReplyStatus)
        error_obj = o.obj("error", nullable=True, default=None)
        error = None
        if status in FAILED_STATUSES:
            if error_obj is None:
                raise o.fail("error", f"a {status.value} reply needs {{kind, param, message}}, got null")
            error = ReplyError(error_obj.enum("kind", ErrorKind), error_obj.string("message"),
                               error_obj.string("param", nullable=True))
        elif error_obj is not None:
            raise o.fail("error", f"must be null in a {status.value} reply")
        return cls(command_id, status, o.ts("ts"), error, o.mapping("result", default={}))


@dataclass(frozen=True)
class Button(Message):
    """`lab/U/$button`."""

    button: Literal["start", "stop"]
    action: Literal["pressed", "held"]
    ts: str

    def to_json(self) -> dict[str, Any]:
        return {"button": self.button, "action": self.action, "ts": self.ts}

    @classmethod
    def from_json(cls, value: Any) -> Button:
        o = Obj(value)
        return cls(o.choice("button", BUTTONS), o.choice("action", BUTTON_ACTIONS), o.ts("ts"))


@dataclass(frozen=True)
class HubState(Message):
    """`lab/hub/$state`; the hub's will publishes `online: false`."""

    online: bool
    ts: str

    def to_json(self) -> dict[str, Any]:
        return {"online": self.online, "ts": self.ts}

    @classmethod
    def from_json(cls, value: Any) -> HubState:
        o = Obj(value)
        return cls(o.boolean("online"), o.ts("ts"))


@dataclass(frozen=True)
class Session(Message):
    """`lab/hub/sessions/U`: the unit's current session."""

    id: str
    state: Literal["open", "closing", "closed", "error"]
    started_at: str
    ended_at: str | None = None
    upload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "started_at": self.started_at, "ended_at": self.ended_at,
                "upload": self.upload}

    @classmethod
    def from_json(cls, value: Any) -> Session:
        o = Obj(value)
        state = cast(Literal["open", "closing", "closed", "error"], o.choice("state", SESSION_STATES))
        ended = o.ts("ended_at", nullable=True)
        if state == "closed" and ended is None:
            raise o.fail("ended_at", "a closed session needs the instant it ended")
        return cls(o.string("id", nonempty=True), state, o.ts("started_at"), ended,
                   o.mapping("upload", default={}))


def check(cls: type[Message], value: Any) -> list[str]:
    """[] when `value` decodes as `cls`, else [the problem]: for tests and `labedge watch`."""
    try:
        cls.from_json(value)
    except WireFormatError as exc:
        return [str(exc)]
    return []
