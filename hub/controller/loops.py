"""Control loops as small pure controllers: ON/OFF with hysteresis and minimum times, and a PID.

The engine feeds them fresh values and turns their decisions into commands.
The PID integrates only while that does not push a saturated output further
(conditional integration: no windup), differentiates the measurement (no kick
on a setpoint change), takes dt from the readings' own timestamps, and starts
bumplessly: from the output it last had, or from its integral at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.controller.tasks import record
from hub.script.model import OnOffLoop, PidLoop

PULSE_MIN_S = 0.001  # shortest pulse the units accept (lecis.driver_specs.gpio `seconds` minimum)


@dataclass
class OnOffState:
    on: bool | None = None  # None: not commanded yet (or the last command failed)
    changed_at: float | None = None
    recheck_at: float | None = None  # a change held back by min_on_s/min_off_s is due then
    last_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return record(self)


def onoff_decide(loop: OnOffLoop, st: OnOffState, value: float, now: float) -> bool | None:
    """The output the loop wants now, or None to keep it; sets `recheck_at` when a minimum time blocks."""
    st.last_value = value
    st.recheck_at = None
    if loop.on_when_low:
        want = True if value < loop.on_threshold else False if value > loop.off_threshold else st.on
    else:
        want = True if value > loop.on_threshold else False if value < loop.off_threshold else st.on
    if want is None:
        want = False  # inside the band at the start: off until a threshold is crossed
    if want == st.on:
        return None
    if st.on is not None and st.changed_at is not None:
        least = loop.min_on_s if st.on else loop.min_off_s
        if now - st.changed_at < least:
            st.recheck_at = st.changed_at + least
            return None
    return want


@dataclass
class PidState:
    integral: float = 0.0
    last_pv: float | None = None
    last_ts: float | None = None
    output: float | None = None  # the last output computed
    next_pulse: float | None = None  # time-proportioning: when the next period starts
    owed_from: float | None = None  # start of a period whose pulse waits for the previous one's answer
    pulse_end: float | None = None  # when the last pulse sent should end (sent at + seconds)
    busy_until: float | None = None  # after a restart: a pulse sent before it may run until then
    sent: float | None = None  # period 0: the last speed sent

    def to_json(self) -> dict[str, Any]:
        return record(self)

    def restart(self) -> None:
        """Forget the last sample (after a hold, a disable, a restart): dt must not span the gap.

        The integral is kept: the output carries on where it was, without a derivative kick.
        """
        self.last_pv = None
        self.last_ts = None

    def resumed(self, now: float, margin_s: float) -> None:
        """After a restart the answer to a pulse sent before it never comes: take it as running until its
        planned end (plus a margin for the unit's start lag), so no pulse is sent into a BUSY module."""
        self.restart()
        if self.pulse_end is not None and self.pulse_end + margin_s > now:
            self.busy_until = self.pulse_end + margin_s


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, x))


def pid_step(loop: PidLoop, st: PidState, pv: float, sp: float, ts: float) -> float | None:
    """One PID update on a reading stamped `ts`; the new output, or None for a repeated timestamp."""
    error = sp - pv
    p = loop.kp * error
    if st.last_ts is None or st.last_pv is None:
        if st.output is not None and st.integral == 0.0:  # bumpless: carry on from an output set outside
            st.integral = _clamp(st.output - p, loop.out_min, loop.out_max)
        st.last_pv, st.last_ts = pv, ts
        st.output = _clamp(p + st.integral, loop.out_min, loop.out_max)
        return st.output
    dt = ts - st.last_ts
    if dt <= 0:
        return None
    d = -loop.kd * (pv - st.last_pv) / dt
    push = loop.ki * error * dt
    candidate = st.integral + push
    u = p + candidate + d
    saturated_further = (u > loop.out_max and push > 0) or (u < loop.out_min and push < 0)
    if not saturated_further:
        st.integral = candidate
    st.last_pv, st.last_ts = pv, ts
    st.output = _clamp(p + st.integral + d, loop.out_min, loop.out_max)
    return st.output


def pulse_seconds(loop: PidLoop, output: float, late_s: float = 0.0) -> float | None:
    """Time-proportioning: on-time for one period, less `late_s` when the pulse goes out that long after
    the period began (it still ends when it would have); None when it rounds to nothing."""
    seconds = _clamp(output, 0.0, 1.0) * loop.period_s - late_s
    return None if seconds < PULSE_MIN_S else round(seconds, 3)
