"""`labedge edge run --config unit.yaml`: the unit process.

Start-up happens in an order where every refusal is one line and exit
status 2, before any module runs: the configuration (every problem of every
file), then the data folder's lock (one unit per folder), then the GPIO pins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from lecis.errors import ConfigError, LabedgeError
from lecis.unit_config import UnitConfig

log = logging.getLogger("labedge.edge")


def add_edge_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge.pins import PIN_FACTORY_KINDS

    edge = subparsers.add_parser("edge", help="the edge unit process",
                                 description="Run or check an edge unit.")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")
    run = edge_sub.add_parser(
        "run", help="run a unit from its unit.yaml (or check it with --check)",
        description="Run a unit: its modules, buttons and LED, the outbox and the broker link. "
                    "Exit status 2 when it cannot start (each reason on one line).")
    run.add_argument("--config", required=True, type=Path, metavar="UNIT_YAML",
                     help="path of the unit.yaml; its DCD files are found relative to it")
    run.add_argument("--pin-factory", choices=PIN_FACTORY_KINDS, default=None,
                     help="GPIO pins: lgpio on a Raspberry Pi, mock to simulate them on any machine "
                          "(default: $GPIOZERO_PIN_FACTORY when it is one of these, else lgpio)")
    run.add_argument("--check", action="store_true",
                     help="check the unit.yaml and every DCD, print each problem as file:line: field: "
                          "message, and exit (0 fine, 2 problems); nothing is started")
    run.add_argument("--no-port-check", action="store_true",
                     help="do not require the serial ports and the TLS CA file to exist on this machine "
                          "(check a unit's files on a laptop or in CI)")
    run.add_argument("--button-socket", type=Path, default=None, metavar="PATH",
                     help="with --pin-factory mock: take simulated button presses on this unix socket "
                          "(mode 0600, in a folder only this user can write; `labedge lab button` uses it)")
    run.set_defaults(handler=run_edge)


def run_edge(args: argparse.Namespace) -> int:
    from edge.pins import default_pin_factory_kind
    from lecis.config_loader import load_unit_config

    try:
        config = load_unit_config(args.config, check_ports=not args.no_port_check)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"labedge: {len(exc.problems)} problem(s) in the configuration; nothing was started",
              file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: unit {config.unit} with {len(config.modules)} module(s) is fine")
        return 0
    button_socket = getattr(args, "button_socket", None)
    if button_socket is not None and (args.pin_factory or default_pin_factory_kind(os.environ)) != "mock":
        print("labedge: --button-socket presses mock pins: use it with --pin-factory mock", file=sys.stderr)
        return 2
    try:
        return start_unit(config, args.pin_factory, button_socket)
    except LabedgeError as exc:
        print(f"labedge: {exc}", file=sys.stderr)
        return 2


def start_unit(config: UnitConfig, pin_factory_kind: str | None, button_socket: Path | None = None) -> int:
    """Take the data folder, open the pins, run until stopped; LabedgeError when it cannot start."""
    from edge.data_lock import DataDirLock
    from edge.pins import default_pin_factory_kind, make_pin_factory, uses_pins

    kind = pin_factory_kind or default_pin_factory_kind(os.environ)
    with DataDirLock(config.data_dir, config.unit, config.source):
        # Opened before any module runs: off a Pi, one line now rather than an ERROR loop later.
        factory = make_pin_factory(kind, config.data_dir) if uses_pins(config) else None
        try:
            return asyncio.run(_serve(config, factory, button_socket))
        finally:
            if factory is not None:
                factory.close()


async def _serve(config: UnitConfig, pin_factory: Any, button_socket: Path | None = None) -> int:
    from edge.driver import DriverResources
    from edge.unit import Unit
    from edge.unit_extras import attach_buttons_and_led

    resources = DriverResources(pin_factory=pin_factory)
    unit = Unit(config, resources=resources)
    attach_buttons_and_led(unit)
    if button_socket is not None:
        from edge.button_socket import ButtonSocket

        unit.extras.append(ButtonSocket(unit, button_socket))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, unit.stop)
    log.info("unit %s starting (boot %s)", unit.id, unit.boot)
    code = await unit.run()
    if code:
        log.error("unit %s stopped on a fault (%s); every output is off", unit.id, unit.failure)
    else:
        log.info("unit %s stopped; every output is off", unit.id)
    return code
