"""A checked experiment script as plain, immutable values.

`hub.script.loader` builds it from YAML (positions kept for error messages);
`hub.controller` runs it. Every task, loop, signal and guard has a name: a
new version of the script is applied as a diff keyed by those names.
Durations are seconds (float). Names of readings are `unit/module.reading`,
of modules `unit/module`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Value = float | int | bool | str | None


@dataclass(frozen=True)
class Position:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Expression(Protocol):
    """A parsed expression (`hub.script.expr`): pure, no Python eval anywhere."""

    text: str
    position: Position

    @property
    def names(self) -> frozenset[str]:
        """Every reading, signal and variable name it reads (a condition re-evaluates when one changes)."""

    @property
    def timed(self) -> bool:
        """True when its value changes with time alone (`t`, age(), stale(), fresh()): the controller
        then also re-evaluates it as time passes."""

    def evaluate(self, env: Environment) -> Value:
        """The value now; raises hub.script.errors.EvaluationError (stale reading, division by zero)."""


class Environment(Protocol):
    """What an expression can read while it is evaluated."""

    def lookup(self, name: str) -> Value:
        """A reading's latest value, a signal, a variable or `t` (elapsed s); raises EvaluationError."""

    def age(self, name: str) -> float | None:
        """Seconds since the reading or signal `name` last changed; None if never seen."""

    def is_stale(self, name: str) -> bool:
        """True when `name` is older than its stale_after (or never seen)."""

    def unit_online(self, unit: str) -> bool: ...


# --- actions -----------------------------------------------------------------

@dataclass(frozen=True)
class SendCommand:
    """A module or unit command: `unit/module: on`, `unit/base_pump: {dose: {ml: 2}}`."""

    unit: str
    module: str | None  # None: a unit-level command ($cmd: ESTOP, CLEAR, RESET)
    cmd: str
    args: Mapping[str, Value]
    position: Position


@dataclass(frozen=True)
class Log:
    """`log: "text {expr}"`: an event of the experiment; `{...}` holds expressions."""

    message: str
    parts: tuple[str | Expression, ...]  # literal text and expressions, in order
    level: Literal["info", "warning", "alarm"]
    position: Position


@dataclass(frozen=True)
class SetVariable:
    name: str
    value: Expression
    position: Position


@dataclass(frozen=True)
class Wait:
    seconds: float
    position: Position


@dataclass(frozen=True)
class SessionAction:
    action: Literal["start", "stop"]
    unit: str
    name: str | None  # the session's experiment name (start only)
    position: Position


@dataclass(frozen=True)
class RunControl:
    """`pause` or `stop` of the whole experiment."""

    action: Literal["pause", "stop"]
    position: Position


Action = SendCommand | Log | SetVariable | Wait | SessionAction | RunControl


# --- tasks -------------------------------------------------------------------

@dataclass(frozen=True)
class At:
    """Once, at `elapsed` seconds after the start."""

    elapsed: float


@dataclass(frozen=True)
class After:
    """Once each time the task `task` finishes (or the event `event` arrives), plus `delay`."""

    task: str | None
    event: str | None  # an event code, e.g. "probe_fault"
    delay: float


@dataclass(frozen=True)
class Every:
    """Every `period` s from `start`; stops after `for_s` or once `until` is true."""

    period: float
    start: float
    for_s: float | None
    until: Expression | None


@dataclass(frozen=True)
class When:
    """Edge-triggered: fires when `condition` turns true and has held for `for_s`; re-arms when false."""

    condition: Expression
    for_s: float


@dataclass(frozen=True)
class While:
    """Runs `do` when `condition` turns true, then every `period` while it holds; `on_exit` when it ends."""

    condition: Expression
    period: float
    on_exit: tuple[Action, ...]


Trigger = At | After | Every | When | While


@dataclass(frozen=True)
class Task:
    name: str
    trigger: Trigger
    actions: tuple[Action, ...]
    position: Position


# --- control loops, signals, guards ------------------------------------------

@dataclass(frozen=True)
class OnOffLoop:
    """Output on below `on_below`, off above `off_above` (or the reverse with `on_above`/`off_below`)."""

    name: str
    input: str  # unit/module.reading or a signal name
    output: tuple[str, str]  # (unit, module)
    on_when_low: bool  # True: dosing base (on while pH is low); False: cooling-like
    on_threshold: float
    off_threshold: float
    min_on_s: float
    min_off_s: float
    position: Position
    enabled: Expression | None = None


@dataclass(frozen=True)
class PidLoop:
    """PID on `input` toward `setpoint` (expression); output in [out_min, out_max].

    `period_s` > 0: the output is a duty (0..1) applied to an on/off module by
    time-proportioning (`pulse`/`run` of duty*period every period). 0: the
    output is sent as `speed` to a PWM module.
    """

    name: str
    input: str
    output: tuple[str, str]
    setpoint: Expression
    kp: float
    ki: float
    kd: float
    out_min: float
    out_max: float
    period_s: float
    position: Position
    enabled: Expression | None = None


Loop = OnOffLoop | PidLoop


@dataclass(frozen=True)
class Signal:
    """A derived signal over one reading: mean, slope (per second, times `scale`), min or max."""

    name: str
    kind: Literal["mean", "slope", "min", "max"]
    source: str  # unit/module.reading
    window_s: float
    scale: float
    position: Position


@dataclass(frozen=True)
class Guard:
    """While `condition` holds the experiment is held and `outputs` are applied (module -> command)."""

    name: str
    condition: Expression
    outputs: tuple[SendCommand, ...]
    position: Position


@dataclass(frozen=True)
class Script:
    experiment: str
    source: str  # file name
    text: str  # the YAML as written (kept with each version)
    units: Mapping[str, str]  # unit id -> path of its unit config or DCD folder, as written
    duration_s: float | None
    stale_after_s: float
    on_error: Literal["stop", "pause", "continue"]
    variables: Mapping[str, Value]
    signals: tuple[Signal, ...]
    loops: tuple[Loop, ...]
    guards: tuple[Guard, ...]
    tasks: tuple[Task, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def task(self, name: str) -> Task | None:
        return next((t for t in self.tasks if t.name == name), None)
