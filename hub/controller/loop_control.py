"""Control loops inside the engine: fresh inputs to ON/OFF decisions, PID outputs, pulses and speeds.

Loops act only on fresh values and never while a guard holds; an ON/OFF loop
sends a command only on a change, a PID with `period_s` > 0 sends one `pulse`
of duty*period per period (the unit ends each on-time itself), with period 0
an `on {speed}` whenever the output moves by 0.1 % of its range.

A pulse never goes out while a pulse (any long command of the engine's) on
the same output is in flight: the unit is BUSY until it ends and would refuse
it. The period's pulse then waits for that answer and is shortened by the
wait, so it ends when it would have (none when less than 1 ms is left, or
when the answer comes only after the period is over). After a restart the
answer of a pulse sent before it never comes: the pulse is taken to run until
its planned end plus RESUME_MARGIN_S.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.controller import switch_off
from hub.controller.effects import CommandEffect, Effect
from hub.controller.loops import onoff_decide, pid_step, pulse_seconds
from hub.script.model import Loop, OnOffLoop, PidLoop

RESUME_MARGIN_S = 1.0  # a pulse sent before a restart: the unit may have started it this much later

if TYPE_CHECKING:
    from hub.controller.engine import Engine


def speed_command(self: Engine, lp: PidLoop, output: float) -> CommandEffect:
    if output <= 0:
        return self._command(*lp.output, "off", {}, "loop", lp.name)
    return self._command(*lp.output, "on", {"speed": round(output, 4)}, "loop", lp.name)


def loop_enabled(self: Engine, lp: Loop) -> bool:
    return lp.enabled is None or self.values.truth(lp.enabled)


def loop_input(self: Engine, lp: Loop, now: float, eff: list[Effect]) -> None:
    if self.holding or self.final:
        return
    value = self.values.fresh(lp.input)
    if not loop_enabled(self, lp):
        if isinstance(lp, OnOffLoop) and self.onoff[lp.name].on:
            self.onoff[lp.name].on, self.onoff[lp.name].changed_at = False, now
            eff.append(self._command(*lp.output, "off", {}, "loop", lp.name))
        elif isinstance(lp, PidLoop):
            st = self.pid[lp.name]
            st.restart()
            if lp.period_s == 0 and st.sent:
                st.sent = 0.0
                eff.append(self._command(*lp.output, "off", {}, "loop", lp.name))
        return
    if value is None:
        return
    if isinstance(lp, OnOffLoop):
        ost = self.onoff[lp.name]
        want = onoff_decide(lp, ost, value, now)
        if want is not None:
            # the first "off" only states what the output already is: no min_off stretch begins
            ost.changed_at = now if (want or ost.on is not None) else None
            ost.on = want
            eff.append(self._command(*lp.output, "on" if want else "off", {}, "loop", lp.name))
        return
    st = self.pid[lp.name]
    sp = self.values.value(lp.setpoint)
    seen = self.values.signals.get(lp.input) or self.values.readings.get(lp.input)
    if not isinstance(sp, int | float) or isinstance(sp, bool) or seen is None:
        return
    out = pid_step(lp, st, value, float(sp), seen[1])
    if out is None or lp.period_s > 0:
        return
    span = max(lp.out_max - lp.out_min, 1e-9)
    if st.sent is None or abs(out - st.sent) >= 0.001 * span:
        st.sent = out
        eff.append(speed_command(self, lp, out))


def loop_timers(self: Engine, now: float, eff: list[Effect]) -> None:
    if self.holding:
        return
    for lp in self.script.loops:
        if isinstance(lp, OnOffLoop):
            ost = self.onoff[lp.name]
            if ost.recheck_at is not None and ost.recheck_at <= now:
                ost.recheck_at = None
                loop_input(self, lp, now, eff)
        elif lp.period_s > 0:
            st = self.pid[lp.name]
            if st.next_pulse is not None and st.next_pulse <= now:
                begun = st.next_pulse
                while st.next_pulse <= now:
                    begun, st.next_pulse = st.next_pulse, st.next_pulse + lp.period_s
                st.owed_from = None  # a pulse still waiting from the period before is dropped
                if pulse_wanted(self, lp):
                    st.owed_from = begun
            send_owed(self, lp, now, eff)


def pulse_wanted(self: Engine, lp: PidLoop) -> bool:
    st = self.pid[lp.name]
    fresh = self.values.fresh(lp.input) is not None
    return st.output is not None and fresh and loop_enabled(self, lp) and not self.final


def pulse_in_flight(self: Engine, lp: PidLoop, now: float) -> bool:
    st = self.pid[lp.name]
    resumed_busy = st.busy_until is not None and now < st.busy_until
    return bool(switch_off.running(self, *lp.output)) or resumed_busy


def send_owed(self: Engine, lp: PidLoop, now: float, eff: list[Effect]) -> None:
    """The period's pulse, once nothing runs on the output: shortened by how late it goes out."""
    st = self.pid[lp.name]
    if st.owed_from is None or pulse_in_flight(self, lp, now):
        return
    late = now - st.owed_from
    st.owed_from = None
    if late >= lp.period_s or not pulse_wanted(self, lp) or st.output is None:
        return
    seconds = pulse_seconds(lp, st.output, late)
    if seconds is not None:
        st.pulse_end = now + seconds
        eff.append(self._command(*lp.output, "pulse", {"seconds": seconds}, "loop", lp.name))

