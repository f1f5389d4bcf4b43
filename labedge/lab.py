"""`labedge lab`: the one-machine lab under one supervisord.

A broker, simulated instruments on pseudo-terminals and a unit with mock
GPIO pins, then live readings in the terminal. Ctrl-C stops everything,
and the unit turns every output off on the way out.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from labedge.lab_files import write_lab_files


def add_lab_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser("lab", help="run broker, simulators and a unit on this machine")
    lab.add_argument("--dir", type=Path, default=Path("var/lab"), help="working folder (default: var/lab)")
    lab.add_argument("--port", type=int, default=1883, help="broker port on 127.0.0.1 (default: 1883)")
    lab.add_argument("--no-watch", action="store_true", help="do not print readings; just keep running")
    lab.set_defaults(handler=run_lab)

    broker = subparsers.add_parser("broker", help="run an MQTT broker: Mosquitto, or the embedded one")
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument("--port", type=int, default=1883)
    broker.add_argument("--dir", type=Path, default=Path("var/broker"))
    broker.add_argument("--embedded", action="store_true",
                        help="use the embedded broker even if Mosquitto is here")
    broker.set_defaults(handler=run_broker)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_broker(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal

    from provisioning.broker import find_mosquitto, mosquitto_config, run_embedded_broker

    mosquitto = None if args.embedded else find_mosquitto()
    if mosquitto is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        conf = args.dir / "mosquitto.conf"
        conf.write_text(mosquitto_config(args.host, args.port, args.dir.resolve(), persistence=True))
        os.execv(mosquitto, [mosquitto, "-c", str(conf)])
    print(f"mosquitto not found; serving MQTT with the embedded broker on {args.host}:{args.port}",
          file=sys.stderr)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_embedded_broker(args.host, args.port, stop)

    asyncio.run(serve())
    return 0


def start_unit_when_ports_exist(lab_dir: Path, conf: Path, timeout: float = 20.0) -> None:
    """The unit checks its serial ports at start; start it once the simulators made them."""
    from labedge.lab_files import INSTRUMENTS

    links = [lab_dir / "dev" / module for module, _ in INSTRUMENTS]
    deadline = time.monotonic() + timeout
    while not all(link.exists() for link in links) and time.monotonic() < deadline:
        time.sleep(0.1)
    supervisorctl = shutil.which("supervisorctl") or str(Path(sys.executable).with_name("supervisorctl"))
    subprocess.run([supervisorctl, "-c", str(conf), "start", "unit-bench-1"], check=False,
                   stdout=subprocess.DEVNULL)


def run_lab(args: argparse.Namespace) -> int:
    if port_in_use(args.port):
        print(f"labedge lab: port {args.port} on 127.0.0.1 is already in use (another broker or lab?). "
              f"Stop it, or choose another port with --port.", file=sys.stderr)
        return 2
    labedge = shutil.which("labedge") or str(Path(sys.executable).with_name("labedge"))
    supervisord = shutil.which("supervisord") or str(Path(sys.executable).with_name("supervisord"))
    conf = write_lab_files(args.dir.resolve(), args.port, labedge)
    print(f"labedge lab: starting broker on 127.0.0.1:{args.port}, simulators and unit bench-1 "
          f"(logs in {args.dir}/logs)")
    proc = subprocess.Popen([supervisord, "-n", "-c", str(conf)])
    try:
        start_unit_when_ports_exist(args.dir.resolve(), conf)
        if args.no_watch:
            proc.wait()
        else:
            time.sleep(1.0)
            from labedge.watch import run_watch

            run_watch(argparse.Namespace(host="127.0.0.1", port=args.port, root="lab"))
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("labedge lab: stopped")
    return 0
