"""`labedge lab`: the one-machine lab under one supervisord.

A broker, simulated instruments on pseudo-terminals and a unit with mock
GPIO pins, then live readings in the terminal. Ctrl-C stops everything,
and the unit turns every output off on the way out.

One lab per folder: `DIR/lab.lock` (a flock held while the lab runs) is
taken before any file is written, so a second `labedge lab` on the same
folder says which process runs there and changes nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from edge.data_lock import LockHeld, LockUnusable, PidLock
from labedge.lab_files import write_lab_files

LOCK_NAME = "lab.lock"


def add_lab_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser(
        "lab", help="run broker, simulators and a unit on this machine",
        description="The one-machine lab: a broker, simulated EZO circuits and unit bench-1 with mock "
                    "GPIO pins, under one supervisord; live readings until Ctrl-C. One lab per --dir.")
    lab.add_argument("--dir", type=Path, default=Path("var/lab"), help="working folder (default: var/lab)")
    lab.add_argument("--port", type=int, default=1883, help="broker port on 127.0.0.1 (default: 1883)")
    lab.add_argument("--no-watch", action="store_true", help="do not print readings; just keep running")
    lab.add_argument("--web-port", type=int, default=8080,
                     help="dashboard port on 127.0.0.1 (default: 8080)")
    lab.add_argument("--bucket-port", type=int, default=9023,
                     help="port of the bucket emulator on 127.0.0.1 (default: 9023)")
    lab.set_defaults(handler=run_lab)
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
    status = lab_sub.add_parser(
        "status", help="the state of every process of a supervisord (the lab's, a unit's, the hub's)",
        description="Print each process supervisord runs and its state, read over supervisor's XML-RPC "
                    "interface. Exit status 0 when every one is RUNNING, 1 otherwise, 2 when no "
                    "supervisord answers.")
    status.add_argument("--dir", type=Path, default=Path("var/lab"),
                        help="the lab's folder, whose supervisor.sock is read (default: var/lab)")
    status.add_argument("--url", default=None, metavar="SERVERURL",
                        help="a supervisord elsewhere: unix:///var/run/supervisor.sock on a Pi or a hub, "
                             "or http://HOST:PORT (default: unix://DIR/supervisor.sock)")
    status.set_defaults(handler=run_lab_status)
    from labedge.lab_button import add_button_parser

    add_button_parser(lab_sub)

    broker = subparsers.add_parser("broker", help="run an MQTT broker: Mosquitto, or the embedded one",
                                   description="Run Mosquitto with labedge's settings (or the embedded "
                                               "broker where Mosquitto is not installed).")
    broker.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    broker.add_argument("--port", type=int, default=1883, help="port to listen on (default: 1883)")
    broker.add_argument("--dir", type=Path, default=Path("var/broker"),
                        help="folder for its config and persistence (default: var/broker)")
    broker.add_argument("--embedded", action="store_true",
                        help="use the embedded broker even if Mosquitto is here")
    broker.set_defaults(handler=run_broker)


def run_lab_status(args: argparse.Namespace) -> int:
    from provisioning.supervisor_status import SupervisorUnreachable, format_status, process_info

    url = args.url or f"unix://{args.dir.resolve()}/supervisor.sock"
    try:
        rows = process_info(url)
    except SupervisorUnreachable as exc:
        print(f"labedge lab status: {exc}", file=sys.stderr)
        return 2
    print(format_status(rows))
    return 0 if rows and all(row.state == "RUNNING" for row in rows) else 1


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


def start_unit_when_ports_exist(lab_dir: Path, conf: Path, timeout: float = 20.0,
                                supervisord: subprocess.Popen[bytes] | None = None) -> bool:
    """A unit checks its serial ports at start; start each once the simulators made its ports.

    False when `supervisord` ended meanwhile (a config it refused: nothing to wait for).
    """
    from labedge.lab_files import UNIT_PORTS

    supervisorctl = shutil.which("supervisorctl") or str(Path(sys.executable).with_name("supervisorctl"))
    waiting = dict(UNIT_PORTS)
    deadline = time.monotonic() + timeout
    while waiting:
        if supervisord is not None and supervisord.poll() is not None:
            return False
        ready = [name for name, links in waiting.items()
                 if all((lab_dir / link).exists() for link in links) or time.monotonic() > deadline]
        for name in ready:
            subprocess.run([supervisorctl, "-c", str(conf), "start", name], check=False,
                           stdout=subprocess.DEVNULL)
            del waiting[name]
        time.sleep(0.1)
    return True


async def _wait_hub_and_unit(port: int, unit: str, timeout: float) -> bool:
    """True once the hub is online and `unit` ready (their retained states): a session command is heard."""
    import asyncio
    import json

    from lecis.mqtt_session import MqttSession, SessionConfig
    from lecis.topics import Topics

    topics = Topics()
    seen: set[str] = set()
    both = asyncio.Event()

    def on_message(topic: str, payload: bytes) -> None:
        try:
            state = json.loads(payload)
        except ValueError:
            return
        if isinstance(state, dict) and (state.get("online") is True or state.get("state") == "ready"):
            seen.add(topic)
        if len(seen) == 2:
            both.set()

    config = SessionConfig(port=port, connect_timeout_s=timeout)
    subscriptions = [topics.hub_state(), topics.unit_state(unit)]
    async with MqttSession(config, subscriptions=subscriptions, on_message=on_message):
        try:
            await asyncio.wait_for(both.wait(), timeout)
        except TimeoutError:
            return False
    return True


def open_lab_session(lab_dir: Path, labedge: str, port: int, timeout: float = 60.0) -> None:
    """The lab's experiment runs with a session open on bench-1 (what a technician's start press does)."""
    import asyncio

    # A command sent before the hub subscribed would be heard by nobody: wait for the hub and the unit.
    if not asyncio.run(_wait_hub_and_unit(port, "bench-1", timeout)):
        print(f"labedge lab: the hub or bench-1 was not up within {timeout:g} s; no session opened (see "
              f"{lab_dir}/logs/hub.log and unit-bench-1.log)", file=sys.stderr)
        return
    hub_yaml = str(lab_dir / "hub" / "hub.yaml")
    done = subprocess.run([labedge, "session", "start", "bench-1", "--config", hub_yaml,
                           "--experiment", "respirometry", "--user", "lab", "--timeout", str(timeout)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 and "already has an open session" in done.stderr + done.stdout:
        print("labedge lab: bench-1's session from an earlier lab in this folder is still open; it goes on",
              file=sys.stderr)
    elif done.returncode != 0:
        print(f"labedge lab: no session opened on bench-1: {(done.stderr or done.stdout).strip()}",
              file=sys.stderr)


def lab_banner(args: argparse.Namespace, lab_dir: Path) -> str:
    from labedge.lab_files import DEMO_PASSWORD, DEMO_USER, LAB_BUCKET

    return (f"labedge lab: running in {args.dir}\n"
            f"dashboard: http://127.0.0.1:{args.web_port}/\n"
            f"login: {DEMO_USER} / {DEMO_PASSWORD}\n"
            f"broker: 127.0.0.1:{args.port} (labedge watch --port {args.port})\n"
            f"units: bench-1 (pH, DO, temperature, aeration, base pump, heater, feed pump on a board), "
            f"bench-2 (pH, temperature, feed pump on a board)\n"
            f"experiment: respirometry on bench-1, with a session open\n"
            f"data: {lab_dir}/hub/data (runs and sessions); logs in {lab_dir}/logs\n"
            f"bucket: gs://{LAB_BUCKET} on http://127.0.0.1:{args.bucket_port} (objects under "
            f"{lab_dir}/bucket)\n"
            f"status: labedge lab status --dir {args.dir}\n"
            f"buttons: labedge lab button bench-1 stop|start --dir {args.dir} (stop --hold: the unit's "
            f"ESTOP)\n"
            f"commands: labedge cmd bench-2/feed_pump run seconds=5 --config {lab_dir}/hub/hub.yaml "
            f"(bench-1 is the experiment's)\n"
            f"stop: Ctrl-C here; every output goes off, then every process stops")


def supervisord_left_running(lab_dir: Path) -> int | None:
    """The pid of a supervisord that an earlier lab in `lab_dir` left behind (its lab was killed)."""
    try:
        pid = int((lab_dir / "supervisord.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"supervisord" in cmdline and str(lab_dir).encode() in cmdline else None


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same way out as Ctrl-C: supervisord and the unit stopped first


def run_lab(args: argparse.Namespace) -> int:
    lab_dir = args.dir.resolve()
    lock = PidLock(lab_dir / LOCK_NAME, {"port": args.port})
    try:
        lock.acquire()
    except LockHeld as exc:
        print(f"labedge lab: a lab is already running in {args.dir}: {exc.holder}. Stop it (Ctrl-C where "
              f"it runs), or use another --dir; nothing was changed.", file=sys.stderr)
        return 2
    except LockUnusable as exc:
        print(f"labedge lab: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_locked_lab(args, lab_dir)
    finally:
        lock.release()


def _run_locked_lab(args: argparse.Namespace, lab_dir: Path) -> int:
    orphan = supervisord_left_running(lab_dir)
    if orphan is not None and orphan != os.getpid():
        print(f"labedge lab: the supervisord of an earlier lab in {args.dir} still runs (pid {orphan}). "
              f"Stop it with: supervisorctl -c {lab_dir}/supervisord.conf shutdown", file=sys.stderr)
        return 2
    for option, port in (("--port", args.port), ("--web-port", args.web_port),
                         ("--bucket-port", args.bucket_port)):
        if port_in_use(port):
            print(f"labedge lab: port {port} on 127.0.0.1 is already in use (another broker or lab?). "
                  f"Stop it, or choose another port with {option}.", file=sys.stderr)
            return 2
    from edge.button_socket import MAX_PATH
    from labedge.lab_button import button_socket_path
    from labedge.lab_files import unsafe_lab_path

    if unsafe_lab_path(lab_dir):
        print(f"labedge lab: the folder {str(lab_dir)!r} holds a quote, a backslash, a control character "
              "or a space before # or ;, which supervisor's config cannot carry; use another --dir",
              file=sys.stderr)
        return 2
    if len(os.fsencode(button_socket_path(lab_dir, "bench-1"))) > MAX_PATH:
        print(f"labedge lab: the folder {lab_dir} is too deep for the units' button sockets (unix socket "
              f"paths are at most {MAX_PATH} bytes); use a shorter --dir", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    labedge = shutil.which("labedge") or str(Path(sys.executable).with_name("labedge"))
    supervisord = shutil.which("supervisord") or str(Path(sys.executable).with_name("supervisord"))
    from provisioning.broker import find_mosquitto

    if find_mosquitto() is None:
        print("labedge lab: warning: Mosquitto is not installed; the embedded broker serves MQTT instead "
              "(slower, and it keeps nothing across restarts). apt-get install mosquitto for the real one.",
              file=sys.stderr)
    conf = write_lab_files(lab_dir, args.port, labedge, args.web_port, args.bucket_port)
    print(f"labedge lab: starting broker on 127.0.0.1:{args.port}, bucket, hub, simulators and units "
          f"bench-1 and bench-2 (logs in {args.dir}/logs)")
    proc = subprocess.Popen([supervisord, "-n", "-c", str(conf)])
    watcher: subprocess.Popen[bytes] | None = None
    try:
        if not start_unit_when_ports_exist(lab_dir, conf, supervisord=proc):
            print(f"labedge lab: supervisord stopped at once (exit status {proc.returncode}); see its "
                  f"message above and {lab_dir}/logs/supervisord.log", file=sys.stderr)
            return 1
        open_lab_session(lab_dir, labedge, args.port)
        print(lab_banner(args, lab_dir), flush=True)
        if args.no_watch:
            proc.wait()
        else:
            time.sleep(1.0)
            # In a process of its own: an MQTT client that hangs on its way out (the broker stopping
            # under it) must not keep the lab from ending; it gets the terminal's Ctrl-C as we do.
            watcher = subprocess.Popen([labedge, "watch", "--config", str(lab_dir / "hub" / "hub.yaml")])
            watcher.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.terminate()
            try:
                watcher.wait(timeout=3)
            except subprocess.TimeoutExpired:
                watcher.kill()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("labedge lab: stopped")
    return 0
