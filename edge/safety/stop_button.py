"""The physical buttons: a held stop button is an ESTOP of the whole unit, network or not."""

from __future__ import annotations

from collections.abc import Callable

ESTOP_REASON = "stop button held"


def button_action(button: str, action: str, estop: Callable[[str], None]) -> bool:
    """Apply what a button action means for safety; True if it was an ESTOP."""
    if button == "stop" and action == "held":
        estop(ESTOP_REASON)
        return True
    return False
