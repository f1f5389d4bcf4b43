"""`labedge sim ezo --probe ph --link PATH`: one simulated EZO circuit until SIGTERM.

SIGUSR1 unplugs it (the link vanishes), SIGUSR2 plugs it back in (`*RE`).
Also runnable alone: `python -m sim.cli sim ezo --probe ph --link /tmp/ph1`.
`labedge sim vessel --unit-config unit.yaml`: every EZO circuit of a unit
reading one respirometry vessel that follows the unit's outputs (sim.vessel_cli).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from lecis.errors import ConfigError
from sim.faults import FAULT_KINDS, FaultPlan, parse_fault_kinds
from sim.process_model import PROBES
from sim.vessel_cli import add_vessel_parser


def _fault_kinds(text: str) -> frozenset[str]:
    try:
        return parse_fault_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return value


def add_sim_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = subparsers.add_parser("sim", help="instrument simulators on pseudo-terminals")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="{ezo,vessel}", required=True)
    ezo = sim_sub.add_parser("ezo", help="a simulated Atlas Scientific EZO circuit (pH, D.O., RTD)",
                             description="Serve one simulated EZO circuit on a pty published at --link.")
    ezo.add_argument("--probe", choices=PROBES, required=True, help="which circuit")
    ezo.add_argument("--link", type=Path, required=True,
                     help="symlink to publish the port at, like /dev/serial/by-id/... (folder must exist)")
    ezo.add_argument("--faults", type=_fault_kinds, default=frozenset(), metavar="LIST",
                     help=f"comma-separated faults to inject: {', '.join(FAULT_KINDS)} (default: none)")
    ezo.add_argument("--fault-rate", type=_fraction, default=0.05, metavar="F",
                     help="chance per line or command of each fault, 0 to 1 (default: 0.05)")
    ezo.add_argument("--seed", type=int, default=0, help="seed for readings and faults (default: 0)")
    ezo.add_argument("--no-continuous", action="store_true",
                     help="power up with continuous mode off (real circuits start with C,1)")
    ezo.add_argument("--speed", type=_positive, default=1.0, metavar="FACTOR",
                     help="run the circuit's clock this many times faster than real time (default: 1)")
    ezo.add_argument("--silence-for", type=_positive, default=3.0, metavar="S",
                     help="seconds a silence fault leaves commands unanswered (default: 3)")
    ezo.add_argument("--disconnect-every", type=_positive, default=30.0, metavar="S",
                     help="mean seconds between disconnect faults (default: 30)")
    ezo.add_argument("--disconnect-for", type=_positive, default=3.0, metavar="S",
                     help="seconds the link stays away at each disconnect fault (default: 3)")
    ezo.set_defaults(handler=run_sim)
    add_vessel_parser(sim_sub, _positive)


def run_sim(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; 2 when the link cannot be published."""
    plan = None
    if args.faults:
        plan = FaultPlan(args.faults, rate=args.fault_rate, seed=args.seed, silence_s=args.silence_for,
                         disconnect_every_s=args.disconnect_every, disconnect_for_s=args.disconnect_for)
    try:
        return asyncio.run(_serve(args, plan))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"labedge sim ezo: --link {args.link}: {problem.message}", file=sys.stderr)
        return 2


async def _serve(args: argparse.Namespace, plan: FaultPlan | None) -> int:
    from lecis.clock import Clock, ScaledClock, SystemClock
    from sim.ezo_device import EzoSimulator

    clock: Clock = SystemClock() if args.speed == 1.0 else ScaledClock(args.speed)
    sim = EzoSimulator(args.probe, args.link, clock=clock, faults=plan, seed=args.seed,
                       continuous=not args.no_continuous)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def later(action: str) -> None:
        task = loop.create_task(sim.disconnect() if action == "unplug" else sim.reconnect())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async with sim:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, later, "unplug")
        loop.add_signal_handler(signal.SIGUSR2, later, "plug")
        faults = ", ".join(sorted(plan.kinds)) if plan else "none"
        print(f"labedge sim: EZO {args.probe} circuit serving {sim.port} (pty {sim.pty_name}; "
              f"faults: {faults}; speed x{args.speed:g})", flush=True)
        await stop.wait()
        await asyncio.gather(*pending, return_exceptions=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.cli", description="labedge simulators")
    add_sim_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
