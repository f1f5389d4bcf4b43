"""DCDs and driver makers shared by the gpio.switch and gpio.pump tests.

`made_drivers()` initializes each driver it is given and, on the way out,
turns it safe and closes it, so no test leaves a pin or watchdog behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from edge.driver import Driver
from lecis.dcd import CommandSpec, Dcd, ParamSpec
from tests.edge.gpio_fixtures import FakeHost

D = TypeVar("D", bound=Driver)
SECONDS = ParamSpec("seconds", minimum=0.001, maximum=3600)
SPEED = ParamSpec("speed", required=False, minimum=0, maximum=1)


def switch_dcd(module: str = "aeration", pin: int = 27, max_on_s: float = 60.0, **settings: Any) -> Dcd:
    values: dict[str, Any] = {"pin": pin, "active_high": True, "max_on_s": max_on_s, **settings}
    return Dcd(
        module=module, driver="gpio.switch", source="test", kind="equipment",
        commands=(CommandSpec("on"), CommandSpec("off"), CommandSpec("pulse", (SECONDS,))),
        on_controller_loss="off", settings=values,
    )


def pump_dcd(pin: int = 17, **settings: Any) -> Dcd:
    values: dict[str, Any] = {
        "pin": pin, "active_high": True, "max_on_s": 60.0, "ml_per_s": 1.0, "max_ml_per_hour": None,
        "pwm": False, "pwm_frequency_hz": 100.0, **settings,
    }
    return Dcd(
        module="base_pump", driver="gpio.pump", source="test", kind="equipment",
        commands=(
            CommandSpec("on", (SPEED,)), CommandSpec("off"), CommandSpec("run", (SECONDS, SPEED)),
            CommandSpec("dose", (ParamSpec("ml", minimum=0.001, maximum=1000), SPEED)),
        ),
        on_controller_loss="off", settings=values,
    )


@contextlib.asynccontextmanager
async def made_drivers() -> AsyncIterator[Callable[[D], Awaitable[D]]]:
    """Yields `add(driver)`: initializes the driver and returns it; all are closed at the end."""
    made: list[Driver] = []

    async def add(driver: D) -> D:
        await driver.initialize()
        made.append(driver)
        return driver

    try:
        yield add
    finally:
        for driver in made:
            driver.safe()
            await driver.close()


def host_of(driver: Driver) -> FakeHost:
    host = driver.host
    assert isinstance(host, FakeHost)
    return host
