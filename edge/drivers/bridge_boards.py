"""One Board per port for the whole unit process: every module on a board shares its link.

Kept in `DriverResources.extra`, so a RESET of one module (a new driver)
keeps the board's link and the other modules' outputs; `open_serial` of the
resources opens the port when given (tests, the lab), else pyserial-asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.driver import DriverResources
from firmware_bridge.board import Board
from firmware_bridge.transport import Transport
from lecis.clock import Clock
from lecis.errors import DeviceError

KEY = "bridge.boards"
CONNECT_WAIT_S = 3.0  # an Uno resets when its port opens and sends HELLO about half a second later


@dataclass
class SharedBoard:
    board: Board
    users: set[str] = field(default_factory=set)


def board_for(resources: DriverResources, module: str, port: str, baudrate: int, clock: Clock,
              watchdog_s: float) -> Board:
    """The board on `port` (opened the first time), with `module` counted as one of its users."""
    boards: dict[str, SharedBoard] = resources.extra.setdefault(KEY, {})
    shared = boards.get(port)
    if shared is None:
        transport = Transport(port, baudrate=baudrate, clock=clock, open_serial=resources.open_serial)
        shared = boards[port] = SharedBoard(Board(transport, clock, watchdog_s=watchdog_s))
        shared.board.start()
    elif shared.board.transport.baudrate != baudrate:
        raise DeviceError("bad_settings", f"{module}: the board on {port} runs at "
                          f"{shared.board.transport.baudrate} baud for another module; use one baudrate")
    shared.users.add(module)
    return shared.board


async def release(resources: DriverResources, module: str, port: str) -> None:
    """`module` no longer uses the board; the last user closes it (outputs to their default)."""
    boards: dict[str, SharedBoard] = resources.extra.get(KEY, {})
    shared = boards.get(port)
    if shared is None:
        return
    shared.users.discard(module)
    if not shared.users:
        del boards[port]
        await shared.board.close()
