"""When timed tasks fall due: pure arithmetic on the run's start time.

Rule for every timer: a due time that passed while the task could not fire
(paused, held by a guard, the hub down) fires the task ONCE when it can;
the schedule then carries on from the grid of the original start, so missed
periods of an `every` are not made up one by one.
"""

from __future__ import annotations

import math

from hub.script.model import Every


def every_next(trigger: Every, started_at: float, after: float | None) -> float | None:
    """First firing time of the grid start + k*period strictly after `after` (None: the first one).

    The window ends at start + for_s (exclusive): `every 10m for 1h` fires 6 times.
    None when the window has passed.
    """
    first = started_at + trigger.start
    if after is None or after < first:
        due = first
    else:
        k = math.floor((after - first) / trigger.period) + 1
        due = first + k * trigger.period
        if due <= after:  # floating point at an exact multiple
            due += trigger.period
    if trigger.for_s is not None and due >= first + trigger.for_s:
        return None
    return due
