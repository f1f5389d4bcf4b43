"""A unit running in the test's own event loop on mock GPIO pins, reached only over MQTT."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.driver import DriverResources
from edge.unit import Unit
from edge.unit_extras import attach_buttons_and_led
from lecis.config_loader import load_unit_config

PUMP = """module: pump1
driver: gpio.pump
pin: 17
max_on_s: 2
ml_per_s: 1.0
max_ml_per_hour: 50
on_controller_loss: "off"
"""
VALVE = """module: valve1
driver: gpio.switch
pin: 27
max_on_s: 100
on_controller_loss: hold
"""
BUTTONS = """buttons: {start_pin: 5, stop_pin: 6, estop_hold_s: 0.5, debounce_s: 0.02}
status_led: {pin: 13}
"""


@dataclass
class RunningUnit:
    unit: Unit
    pins: Any  # the MockFactory

    def pin(self, number: int) -> Any:
        return self.pins.pin(number)


def write_equipment_unit(tmp: Path, name: str, port: int, dcds: dict[str, str], extra: str = BUTTONS) -> Path:
    (tmp / "dcd").mkdir(exist_ok=True)
    for module, text in dcds.items():
        (tmp / "dcd" / f"{module}.yaml").write_text(text)
    modules = ", ".join(f"dcd/{m}.yaml" for m in dcds)
    config = tmp / "unit.yaml"
    config.write_text(f"unit: {name}\nbroker: {{host: 127.0.0.1, port: {port}, keepalive_s: 2}}\n"
                      f"data_dir: {tmp / 'data'}\nmodules: [{modules}]\n{extra}")
    return config


@contextlib.asynccontextmanager
async def running_unit(tmp: Path, name: str, port: int,
                       dcds: dict[str, str] | None = None) -> AsyncIterator[RunningUnit]:
    config = load_unit_config(write_equipment_unit(tmp, name, port, dcds or {"pump1": PUMP, "valve1": VALVE}))
    pins = MockFactory(pin_class=MockPWMPin)
    unit = Unit(config, resources=DriverResources(pin_factory=pins))
    attach_buttons_and_led(unit)
    task = asyncio.create_task(unit.run())
    try:
        async with asyncio.timeout(10):
            await unit.ready.wait()
            await unit.link.connected.wait()
        yield RunningUnit(unit, pins)
    finally:
        unit.stop()
        async with asyncio.timeout(10):
            await task
        pins.close()
