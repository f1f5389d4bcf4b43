"""The LECIS state model of a module (docs/contract.md), as data plus a machine that enforces it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lecis.errors import CommandStateForbidden, LabedgeError


class LecisState(str, Enum):
    POWERED_UP = "POWERED_UP"
    INITIALIZING = "INITIALIZING"
    IDLE = "IDLE"
    BUSY = "BUSY"
    PAUSED = "PAUSED"
    ESTOPPED = "ESTOPPED"
    CLEARING = "CLEARING"
    ERROR = "ERROR"
    SHUTDOWN = "SHUTDOWN"


class Control(str, Enum):
    REMOTE = "REMOTE"
    LOCAL = "LOCAL"


S = LecisState
ALL_STATES = frozenset(S)
LIVE_STATES = ALL_STATES - {S.SHUTDOWN}
NORMAL_OPERATION = frozenset({S.IDLE, S.BUSY, S.PAUSED})

STANDARD_COMMANDS = (
    "INIT", "PAUSE", "RESUME", "ABORT", "ESTOP", "CLEAR", "RESET", "STATUS", "LOCAL", "REMOTE",
)

# Where each standard command may be given. Device commands (the DCD's own)
# are allowed in IDLE only: one command at a time per module.
COMMAND_ALLOWED_IN: dict[str, frozenset[LecisState]] = {
    "INIT": frozenset({S.POWERED_UP}),
    "PAUSE": frozenset({S.BUSY}),
    "RESUME": frozenset({S.PAUSED}),
    "ABORT": frozenset({S.BUSY, S.PAUSED}),
    "ESTOP": LIVE_STATES,
    "CLEAR": frozenset({S.ESTOPPED, S.ERROR}),
    "RESET": LIVE_STATES,
    "STATUS": ALL_STATES,
    "LOCAL": LIVE_STATES,
    "REMOTE": LIVE_STATES,
}
DEVICE_COMMAND_ALLOWED_IN = frozenset({S.IDLE})

# Commands a remote controller may still give while the module is in LOCAL control.
ALLOWED_IN_LOCAL = frozenset({"STATUS", "ESTOP", "LOCAL", "REMOTE"})

# Commands that need no lease (docs/contract.md: STATUS and ESTOP).
LEASE_FREE = frozenset({"STATUS", "ESTOP"})

# (from states, event, to state). Upper-case events are commands, lower-case
# ones are what the module reports as the command or the device progresses.
TRANSITIONS: tuple[tuple[frozenset[LecisState], str, LecisState], ...] = (
    (frozenset({S.POWERED_UP}), "INIT", S.INITIALIZING),
    (frozenset({S.INITIALIZING}), "init_ok", S.IDLE),
    (frozenset({S.INITIALIZING}), "init_failed", S.ERROR),
    (frozenset({S.IDLE}), "start", S.BUSY),
    (frozenset({S.BUSY}), "done", S.IDLE),
    (frozenset({S.BUSY}), "PAUSE", S.PAUSED),
    (frozenset({S.PAUSED}), "RESUME", S.BUSY),
    (frozenset({S.BUSY, S.PAUSED}), "ABORT", S.IDLE),
    (LIVE_STATES, "ESTOP", S.ESTOPPED),
    (frozenset({S.ESTOPPED, S.ERROR}), "CLEAR", S.CLEARING),
    (frozenset({S.CLEARING}), "clear_ok", S.IDLE),
    (frozenset({S.CLEARING}), "clear_failed", S.ERROR),
    (LIVE_STATES, "fault", S.ERROR),
    # RESET re-initializes; a latched ESTOP survives it (the module comes back ESTOPPED after
    # INIT, see edge.module_supervisor): only CLEAR releases the latch.
    (LIVE_STATES, "RESET", S.POWERED_UP),
    (ALL_STATES, "shutdown", S.SHUTDOWN),
)


class StateTransitionInvalid(LabedgeError):
    """A module tried a transition the LECIS table does not have (a bug, not user input)."""


def next_state(state: LecisState, event: str) -> LecisState:
    """The state after `event` in `state`; raises StateTransitionInvalid if the table has none."""
    for sources, name, target in TRANSITIONS:
        if name == event and state in sources:
            return target
    raise StateTransitionInvalid(f"no LECIS transition for event {event!r} in state {state.value}")


def check_command_allowed(state: LecisState, control: Control, cmd: str, standard: bool) -> None:
    """Raise CommandStateForbidden if `cmd` may not be given now."""
    if control is Control.LOCAL and cmd not in ALLOWED_IN_LOCAL:
        raise CommandStateForbidden(
            f"module is under LOCAL control; {cmd} from the network is refused (send REMOTE first)"
        )
    allowed = COMMAND_ALLOWED_IN[cmd] if standard else DEVICE_COMMAND_ALLOWED_IN
    if state not in allowed:
        wanted = ", ".join(sorted(s.value for s in allowed))
        raise CommandStateForbidden(f"{cmd} is not allowed in state {state.value} (allowed in: {wanted})")


@dataclass
class ModuleError:
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class StateMachine:
    """A module's LECIS state, control mode and current error."""

    def __init__(self) -> None:
        self.state = S.POWERED_UP
        self.control = Control.REMOTE
        self.error: ModuleError | None = None

    def apply(self, event: str) -> LecisState:
        self.state = next_state(self.state, event)
        if self.state in NORMAL_OPERATION or self.state is S.POWERED_UP:
            self.error = None
        return self.state

    def fault(self, code: str, message: str) -> None:
        self.error = ModuleError(code, message)
        self.state = next_state(self.state, "fault")
