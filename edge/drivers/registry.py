"""Which driver class serves which `driver:` name of a DCD (imported lazily)."""

from __future__ import annotations

import importlib

from edge.driver import Driver

DRIVER_CLASSES = {
    "ezo": "edge.drivers.ezo:EzoDriver",
    "line": "edge.drivers.line:LineDriver",
    "gpio.switch": "edge.drivers.gpio_switch:GpioSwitchDriver",
    "gpio.pump": "edge.drivers.gpio_pump:GpioPumpDriver",
}


def driver_class(name: str) -> type[Driver]:
    module_name, _, class_name = DRIVER_CLASSES[name].partition(":")
    cls: type[Driver] = getattr(importlib.import_module(module_name), class_name)
    return cls
