"""Which driver class serves which `driver:` name of a DCD: read from its spec, imported lazily."""

from __future__ import annotations

import importlib

from edge.driver import Driver
from lecis.driver_specs import DRIVER_SPECS, driver_spec

DRIVER_CLASSES = {name: spec.driver_class for name, spec in DRIVER_SPECS.items()}


def driver_class(name: str) -> type[Driver]:
    module_name, _, class_name = driver_spec(name).driver_class.partition(":")
    cls: type[Driver] = getattr(importlib.import_module(module_name), class_name)
    return cls
