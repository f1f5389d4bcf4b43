"""`labedge sim vessel --unit-config unit.yaml`: a unit's EZO circuits reading one vessel.

Each EZO instrument of the unit config (probe ph, do or rtd) is served on a
pty at its DCD's `port`, all reading the same `sim.vessel.Vessel`; the
vessel follows the unit's `aeration`, `base_pump` and `heater` (or the
modules `--roles` names) through their retained `lab/U/M/state` on the
unit's broker. Start it before the unit (the ports must exist); it waits
for the broker by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from lecis.errors import ConfigError, SettingInvalid
from lecis.mqtt_session import SessionConfig
from lecis.topics import Topics
from lecis.unit_config import UnitConfig
from sim.vessel import VesselParams
from sim.vessel_link import DEFAULT_ROLES, parse_roles

EZO_PROBES = ("ph", "do", "rtd")


def _roles(text: str) -> dict[str, str]:
    try:
        return parse_roles(text)
    except SettingInvalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_vessel_parser(sim_sub: argparse._SubParsersAction[argparse.ArgumentParser],
                      positive: Callable[[str], float]) -> None:
    default_roles = ",".join(f"{m}={r}" for m, r in DEFAULT_ROLES.items())
    vessel = sim_sub.add_parser(
        "vessel", help="a respirometry vessel: a unit's EZO circuits on ptys, following its outputs",
        description="Serve every EZO circuit of a unit config on its DCD's port, all reading one "
                    "simulated respirometry vessel (DO, pH, temperature) that follows the unit's "
                    "aeration, base pump and heater over MQTT.")
    vessel.add_argument("--unit-config", type=Path, required=True, metavar="PATH",
                        help="the unit's unit.yaml: its EZO ports, equipment DCDs and broker")
    vessel.add_argument("--roles", type=_roles, default=dict(DEFAULT_ROLES), metavar="LIST",
                        help="MODULE=ROLE pairs, ROLE one of aeration, base, heater "
                             f"(default: {default_roles})")
    vessel.add_argument("--seed", type=int, default=0, help="seed for the probes' noise (default: 0)")
    vessel.add_argument("--speed", type=positive, default=1.0, metavar="FACTOR",
                        help="run the vessel and circuits this many times faster than real time (default: 1)")
    vessel.set_defaults(handler=run_vessel)


def run_vessel(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; 2 when the unit config or a port cannot be used."""
    from lecis.config_loader import load_unit_config

    try:
        config = load_unit_config(args.unit_config, check_ports=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"labedge sim vessel: {problem}", file=sys.stderr)
        return 2
    circuits = [(d.module, str(d.settings["probe"]), Path(str(d.settings["port"]))) for d in config.modules
                if d.driver == "ezo" and d.settings.get("probe") in EZO_PROBES]
    if not circuits:
        print(f"labedge sim vessel: {args.unit_config} has no EZO instrument (driver: ezo) to simulate",
              file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, config, circuits))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"labedge sim vessel: {problem.message}", file=sys.stderr)
        return 2


async def _serve(args: argparse.Namespace, config: UnitConfig, circuits: list[tuple[str, str, Path]]) -> int:
    from lecis.clock import Clock, ScaledClock, SystemClock
    from sim.ezo_device import EzoSimulator
    from sim.vessel import Vessel
    from sim.vessel_link import VesselFollower, roles_for

    clock: Clock = SystemClock() if args.speed == 1.0 else ScaledClock(args.speed)
    vessel = Vessel(clock, VesselParams(seed=args.seed))
    roles = roles_for(config.modules, args.roles)
    follower = VesselFollower(vessel, config.unit, roles, Topics(config.topic_root))
    broker = config.broker
    session = follower.session(SessionConfig(host=broker.host, port=broker.port, username=broker.username,
                                             password=broker.password, tls_ca=broker.tls_ca,
                                             client_id=f"sim-vessel-{config.unit}"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        for i, (module, probe, port) in enumerate(circuits):
            sim = EzoSimulator(probe, port, clock=clock, seed=args.seed + i, model=vessel)
            await stack.enter_async_context(sim)
            print(f"labedge sim: EZO {probe} circuit of {config.unit}/{module} serving {port} "
                  f"(pty {sim.pty_name}) from the vessel", flush=True)
        following = asyncio.create_task(session.run())
        print(f"labedge sim: vessel follows {', '.join(f'{r.module}->{r.role}' for r in roles) or 'nothing'} "
              f"of {config.unit} on {broker.host}:{broker.port} (speed x{args.speed:g})", flush=True)
        try:
            await stop.wait()
        finally:
            session.stop()
            await following
    return 0
