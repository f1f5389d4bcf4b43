"""`labedge lab button UNIT start|stop [--hold]`: a press of a lab unit's button, and what came of it.

The lab's units run on mock GPIO pins and each listens on a unix socket in
the lab's `DIR/run/` (mode 0700, made by `labedge lab`; edge/button_socket.py).
This asks the unit to press its own button pin: the unit's button logic
runs as on a bench (debounce, the `$button` message it sends, and a held
stop's ESTOP). Then it waits for what followed, as read from the broker
with the lab hub's login (`DIR/hub/hub.yaml`): the unit's session on the
hub (`lab/hub/sessions/U`) and, for a held stop, its modules ESTOPPED.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from lecis.errors import ConfigError, LabedgeError
from lecis.topics import UNIT_ID, Topics

RUN_DIR = "run"


def button_socket_path(lab_dir: Path, unit: str) -> Path:
    """Where the lab's unit `unit` takes simulated presses."""
    return lab_dir / RUN_DIR / f"{unit}.button"


def add_button_parser(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    button = lab_sub.add_parser(
        "button", help="press a lab unit's start or stop button (its mock GPIO pin)",
        description="Press the start or stop button of one of the lab's units: its mock GPIO pin, so the "
                    "unit's own button logic runs. Then print the unit's session as the hub reports it "
                    "(a start press opens one, a stop press closes it); --hold keeps stop pressed until "
                    "the unit's emergency stop (ESTOP) and waits for it.")
    button.add_argument("unit", metavar="UNIT", help="the unit id, e.g. bench-1")
    button.add_argument("button", choices=("start", "stop"), help="which button")
    button.add_argument("--hold", action="store_true",
                        help="hold the stop button (estop_hold_s, 2 s by default): the unit's ESTOP")
    button.add_argument("--dir", type=Path, default=Path("var/lab"),
                        help="the lab's folder (default: var/lab)")
    button.add_argument("--port", type=int, default=None,
                        help="broker port on 127.0.0.1 (default: the lab hub's, from DIR/hub/hub.yaml)")
    button.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="how long to wait for the hub's answer (default: 10)")
    button.set_defaults(handler=run_button)


def run_button(args: argparse.Namespace) -> int:
    if not UNIT_ID.match(args.unit):
        print(f"labedge lab button: {args.unit!r} is not a unit id (e.g. bench-1)", file=sys.stderr)
        return 2
    if args.hold and args.button != "stop":
        print("labedge lab button: only the stop button is held (--hold: the unit's ESTOP)", file=sys.stderr)
        return 2
    from lecis.mqtt_session import SessionConfig

    hub_yaml = args.dir / "hub" / "hub.yaml"
    config = SessionConfig(port=args.port or 1883, connect_timeout_s=5.0)
    root = "lab"
    if hub_yaml.exists():
        from hub.config import load_hub_config

        try:
            hub = load_hub_config(hub_yaml, check_files=False)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 2
        broker = hub.broker
        config = SessionConfig(host=broker.host, port=args.port or broker.port, username=broker.username,
                               password=broker.password, tls_ca=broker.tls_ca, connect_timeout_s=5.0)
        root = hub.topic_root
    socket_path = button_socket_path(args.dir.resolve(), args.unit)
    try:
        return asyncio.run(press(socket_path, args.unit, args.button, args.hold, config, args.timeout, root))
    except LabedgeError as exc:
        print(f"labedge lab button: {exc}", file=sys.stderr)
        return 2


class UnitUnreachable(LabedgeError):
    """The lab's unit does not take presses (not running, or no such unit in this lab)."""


async def ask_unit(socket_path: Path, line: str, timeout: float) -> str:
    """Send one line to the unit's button socket; its answer, or UnitUnreachable."""
    unit = socket_path.stem
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise UnitUnreachable(f"unit {unit} takes no presses at {socket_path}: is the lab running there "
                              f"(--dir) and is {unit} one of its units? (labedge lab status)") from None
    except OSError as exc:
        raise UnitUnreachable(f"cannot reach unit {unit} at {socket_path}: {exc.strerror}") from None
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), timeout)
    except (TimeoutError, ConnectionError):
        raise UnitUnreachable(f"unit {unit} did not answer the press within {timeout:g} s") from None
    finally:
        writer.close()
    text = answer.decode("utf-8", "replace").strip()
    if not text.startswith("ok"):
        raise UnitUnreachable(f"unit {unit} refused the press: {text.removeprefix('error ') or 'no answer'}")
    return text


async def press(socket_path: Path, unit: str, button: str, hold: bool, config: object, timeout: float,
                root: str = "lab") -> int:
    from lecis.clock import iso_ts
    from lecis.mqtt_session import MqttSession, SessionConfig

    assert isinstance(config, SessionConfig)
    topics = Topics(root)
    pressed_at = iso_ts(datetime.now(UTC))
    answer: list[dict[str, object]] = []
    changed = asyncio.Event()
    estopped = asyncio.Event()

    def on_message(topic: str, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if topic == topics.hub_session(unit):
            # The retained session from before the press is older than it: only a newer one answers.
            stamp = message.get("started_at") if button == "start" else message.get("ended_at")
            if isinstance(stamp, str) and stamp >= pressed_at:
                answer.append(message)
                changed.set()
        elif message.get("lecis") == "ESTOPPED" and str(message.get("ts", "")) >= pressed_at:
            estopped.set()

    subscriptions = [topics.hub_session(unit), topics.module_filter(unit, "state")]
    async with MqttSession(config, subscriptions=subscriptions, on_message=on_message):
        how = "hold" if hold else "press"
        await ask_unit(socket_path, f"{how} {button}", timeout + 10.0)
        print(f"{'held' if hold else 'pressed'} {button} on {unit}", flush=True)
        if hold:
            try:
                await asyncio.wait_for(estopped.wait(), timeout)
            except TimeoutError:
                print(f"{unit}: no module reported ESTOPPED within {timeout:g} s", file=sys.stderr)
                return 1
            print(f"{unit}: ESTOP (stop button held); `labedge cmd {unit} CLEAR` clears it")
        # A held stop is first a press: it also closes the session, when one is open.
        wait = min(timeout, 2.0) if hold else timeout
        try:
            await asyncio.wait_for(changed.wait(), wait)
        except TimeoutError:
            if hold:
                print(f"{unit}: no session changed (none was open?)")
                return 0
            print(f"the hub changed no session within {timeout:g} s (a press it refuses makes the unit's "
                  f"LED blink; `labedge session show {unit} --config ...` says why)")
            return 1
    print(f"{unit}: session {answer[0].get('id')} {answer[0].get('state')}")
    return 0
