"""`labedge edge run --config unit.yaml`: the unit process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from lecis.errors import ConfigError

log = logging.getLogger("labedge.edge")


def add_edge_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = subparsers.add_parser("edge", help="the edge unit process")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    run = edge_sub.add_parser("run", help="run a unit from its unit.yaml")
    run.add_argument("--config", required=True, type=Path, help="path of the unit.yaml")
    run.add_argument("--pin-factory", choices=["mock"], default=None,
                     help="GPIO pin factory: 'mock' for a unit without a Pi (default: gpiozero's choice)")
    run.add_argument("--check", action="store_true", help="check the configuration and exit")
    run.set_defaults(handler=run_edge)


def run_edge(args: argparse.Namespace) -> int:
    from lecis.config_loader import load_unit_config

    try:
        config = load_unit_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"labedge: {len(exc.problems)} problem(s) in the configuration; nothing was started",
              file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: unit {config.unit} with {len(config.modules)} module(s) is fine")
        return 0
    return asyncio.run(_serve(config, args.pin_factory))


async def _serve(config: object, pin_factory_kind: str | None) -> int:
    from edge.driver import DriverResources
    from edge.pins import make_pin_factory
    from edge.unit import Unit
    from edge.unit_extras import attach_buttons_and_led

    resources = DriverResources(pin_factory=make_pin_factory(pin_factory_kind))
    unit = Unit(config, resources=resources)  # type: ignore[arg-type]
    attach_buttons_and_led(unit)
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
