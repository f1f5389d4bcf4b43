"""The units of a script, simulated in-process over a `Vessel`: a `hub.controller.effects.Plant`, no broker.

Instruments (EZO pH, D.O., RTD) read the vessel every `period_s` of their
DCD, each message with the module's next `seq`; equipment (`gpio.switch`,
`gpio.pump`) acts on the vessel's roles with the unit's own limits
(`hub.simulate.equipment`). Commands are checked as the unit checks them:
known command and arguments by `lecis.command_check` against the Birth the
unit would publish, then the module's state (device commands in IDLE only),
then the driver's own rules. Everything happens on the shared `Agenda`; the
runner moves the simulated clock from one due item to the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hub.controller.effects import Outcome, Reading
from hub.script.model import Value
from hub.simulate.clock import SimClock
from hub.simulate.equipment import TIMED, SimOutput
from hub.simulate.events import Agenda
from lecis.command_check import check_against_birth
from lecis.dcd import Dcd
from lecis.errors import CommandRejected, CommandUnknown, SettingInvalid
from lecis.states import Control, LecisState, check_command_allowed
from lecis.wire.birth import Birth
from sim.vessel import ROLES, Vessel

#: Equipment modules and the vessel role they act on, unless the caller maps them otherwise.
DEFAULT_ROLES: Mapping[str, str] = {"aeration": "aeration", "base_pump": "base", "heater": "heater"}

#: What each EZO probe's reading names take from `Vessel.sample`, and how the circuit rounds them.
_EZO_VALUES: Mapping[str, Mapping[str, tuple[str, int]]] = {
    "ph": {"ph": ("ph", 3)},
    "rtd": {"temp": ("temp_c", 3)},
    "do": {"do_mg": ("mg_l", 2), "do_sat": ("percent", 1)},
}


class PlantListener(Protocol):
    """Where the plant reports what the units would publish."""

    def reading(self, reading: Reading) -> None: ...

    def state(self, unit: str, module: str, outputs: dict[str, Any], lecis: str) -> None: ...

    def event(self, unit: str, module: str, seq: int, level: str, code: str, message: str) -> None: ...


OnOutcome = Callable[[Outcome], None]


@dataclass
class _Module:
    unit: str
    dcd: Dcd
    seq: int = 0
    state: LecisState = LecisState.IDLE
    output: SimOutput | None = None
    role: str | None = None
    probe: str | None = None
    pending: OnOutcome | None = None  # the timed command running now

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def _rejected(exc: CommandRejected) -> Outcome:
    return Outcome("rejected", error=exc.to_error())


class SimulatedPlant:
    """The script's units, on `clock` and `agenda`, acting on `vessel`; reports go to `listener`."""

    def __init__(self, births: Mapping[str, Birth], dcds: Mapping[str, Iterable[Dcd]], vessel: Vessel,
                 clock: SimClock, agenda: Agenda, listener: PlantListener,
                 roles: Mapping[str, str] | None = None) -> None:
        self.births, self.vessel, self.clock, self.agenda = births, vessel, clock, agenda
        self.listener = listener
        roles = DEFAULT_ROLES if roles is None else roles
        self.modules: dict[tuple[str, str], _Module] = {}
        for unit, unit_dcds in dcds.items():
            for dcd in unit_dcds:
                m = self.modules[(unit, dcd.module)] = _Module(unit, dcd)
                if dcd.driver == "ezo" and dcd.settings.get("probe") in _EZO_VALUES:
                    m.probe = str(dcd.settings["probe"])
                elif dcd.driver in ("gpio.switch", "gpio.pump", "bridge"):  # bridge: a pump on a board
                    m.role = roles.get(f"{unit}/{dcd.module}", roles.get(dcd.module))
                    if m.role is not None and m.role not in ROLES:
                        raise SettingInvalid(f"{unit}/{dcd.module}: unknown vessel role {m.role!r} "
                                             f"(roles: {', '.join(ROLES)})")
                    m.output = SimOutput(dcd, clock, agenda, self._changed(m), self._evented(m))

    # ---- what the units publish -----------------------------------------------------------------
    def start(self) -> None:
        """Publish every module's state and schedule each instrument's first reading."""
        instruments = [m for m in self.modules.values() if m.probe is not None]
        for i, m in enumerate(instruments):
            period = float(m.dcd.settings.get("period_s", 1.0))
            # Spread the first readings over a period: real instruments are not in phase.
            self._schedule_reading(m, self.clock.monotonic() + period * (i + 1) / (len(instruments) + 1))
        for m in self.modules.values():
            self._publish_state(m)

    def simulated(self) -> list[str]:
        """`unit/module` of every module the vessel drives or feeds."""
        return [f"{m.unit}/{m.dcd.module}" for m in self.modules.values() if m.probe or m.role]

    def not_simulated(self) -> list[str]:
        """`unit/module` of every module with nothing in the vessel to read or drive (silent in the run)."""
        return [f"{m.unit}/{m.dcd.module}" for m in self.modules.values() if not (m.probe or m.role)]

    def _schedule_reading(self, m: _Module, at: float) -> None:
        self.agenda.at(at, lambda: self._read(m, at))

    def _read(self, m: _Module, at: float) -> None:
        assert m.probe is not None
        sample = self.vessel.sample(m.probe)
        names = {r.name for r in m.dcd.readings}
        values = {name: round(sample[key], digits) for name, (key, digits) in _EZO_VALUES[m.probe].items()
                  if name in names}
        if m.probe == "do":
            values = {k: max(v, 0.0) for k, v in values.items()}
        self.listener.reading(Reading(m.unit, m.dcd.module, self.clock.epoch(), values, m.next_seq()))
        self._schedule_reading(m, at + float(m.dcd.settings.get("period_s", 1.0)))

    def _publish_state(self, m: _Module) -> None:
        outputs = m.output.outputs() if m.output is not None else {}
        self.listener.state(m.unit, m.dcd.module, outputs, m.state.value)

    def _changed(self, m: _Module) -> Callable[[bool, float], None]:
        def changed(on: bool, speed: float) -> None:
            if m.role is not None:
                ml_per_s = m.output.ml_per_s if m.output is not None and m.role == "base" else None
                self.vessel.set_output(m.role, on, speed if on else 1.0, ml_per_s=ml_per_s)
            self._publish_state(m)
        return changed

    def _evented(self, m: _Module) -> Callable[[str, str, str], None]:
        def evented(level: str, code: str, message: str) -> None:
            self.listener.event(m.unit, m.dcd.module, m.next_seq(), level, code, message)
        return evented

    # ---- commands -------------------------------------------------------------------------------
    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        """The `Plant` protocol: the final answer, once simulated time has carried the command out."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.submit(unit, module, cmd, args, done.set_result)
        return await done

    def submit(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
               on_outcome: OnOutcome) -> None:
        """Check and start a command; `on_outcome` gets the final answer (now, or when it ends)."""
        try:
            outcome = self._command(unit, module, cmd, dict(args), on_outcome)
        except CommandRejected as exc:
            outcome = _rejected(exc)
        if outcome is not None:
            on_outcome(outcome)

    def _command(self, unit: str, module: str | None, cmd: str, args: dict[str, Any],
                 on_outcome: OnOutcome) -> Outcome | None:
        birth = self.births.get(unit)
        if birth is None:
            known = ", ".join(sorted(self.births))
            raise CommandUnknown(f"no unit {unit!r} in this simulation (units: {known})")
        if module is None:
            return self._unit_command(unit, cmd)
        checked = check_against_birth(birth, module, cmd, args)
        m = self.modules[(unit, module)]
        check_command_allowed(m.state, Control.REMOTE, checked.name, checked.standard)
        if checked.standard:
            return self._standard(m, checked.name)
        if m.output is None:
            return Outcome("done", result={})  # an instrument's own command: nothing in the water changes
        m.output.check(checked.name, checked.args)

        def finished(result: dict[str, Any]) -> None:
            m.pending = None
            m.state = LecisState.IDLE
            self._publish_state(m)
            on_outcome(Outcome("done", result=result))

        result = m.output.execute(checked.name, checked.args, finished)
        if result is not None:
            return Outcome("done", result=result)
        if checked.name in TIMED and m.output.run is not None:
            m.state, m.pending = LecisState.BUSY, on_outcome
            self._publish_state(m)
        return None

    def _standard(self, m: _Module, name: str) -> Outcome:
        if name == "ABORT":
            self._abort(m, "aborted by ABORT")
            m.state = LecisState.IDLE
        elif name == "ESTOP":
            self._abort(m, "aborted by ESTOP")
            m.state = LecisState.ESTOPPED
        elif name == "CLEAR":
            m.state = LecisState.IDLE
        elif name in ("PAUSE", "RESUME"):
            return Outcome("failed", error={"kind": "execution", "param": None,
                                            "message": f"{name} is not simulated"})
        self._publish_state(m)
        return Outcome("done", result={"lecis": m.state.value})

    def _abort(self, m: _Module, why: str) -> None:
        if m.output is None:
            return
        pending, m.pending = m.pending, None
        if not m.output.abort():
            m.output.switch(0.0)
        if pending is not None:
            pending(Outcome("failed", error={"kind": "execution", "param": None, "message": why}))

    def _unit_command(self, unit: str, cmd: str) -> Outcome:
        name = cmd.upper()
        if name not in ("ESTOP", "CLEAR", "RESET"):
            raise CommandUnknown(f"unit {unit} has no unit command {cmd!r} (ESTOP, CLEAR, RESET)")
        for m in [m for (u, _), m in self.modules.items() if u == unit]:
            if name == "ESTOP":
                self._standard(m, "ESTOP")
            elif m.state is LecisState.ESTOPPED and name == "RESET":
                continue  # the latch holds through RESET: only CLEAR releases it
            else:
                self._standard(m, "CLEAR")
        return Outcome("done", result={})

    def outputs(self) -> dict[str, dict[str, Any]]:
        """`unit/module` -> outputs now, for every equipment module."""
        return {f"{m.unit}/{m.dcd.module}": m.output.outputs()
                for m in self.modules.values() if m.output is not None}



