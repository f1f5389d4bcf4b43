"""`labedge lab button UNIT start|stop`: a press of a simulated unit's button, and what the hub made of it.

The lab's units have no buttons to touch: this sends the message a unit
sends when its button is pressed (`lab/U/$button`, the same codec), then
waits for the unit's session topic (`lab/hub/sessions/U`) to change and
prints the result. A press the hub refuses leaves the session as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from lecis.errors import LabedgeError
from lecis.topics import UNIT_ID, Topics


def add_button_parser(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    button = lab_sub.add_parser(
        "button", help="press a simulated unit's start or stop button",
        description="Send the message a unit sends when its start or stop button is pressed, then print "
                    "the unit's session as the hub reports it (a start press opens a session, a stop "
                    "press closes it).")
    button.add_argument("unit", metavar="UNIT", help="the unit id, e.g. bench-1")
    button.add_argument("button", choices=("start", "stop"), help="which button")
    button.add_argument("--port", type=int, default=1883, help="broker port on 127.0.0.1 (default: 1883)")
    button.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="how long to wait for the hub's answer (default: 10)")
    button.set_defaults(handler=run_button)


def run_button(args: argparse.Namespace) -> int:
    if not UNIT_ID.match(args.unit):
        print(f"labedge lab button: {args.unit!r} is not a unit id (e.g. bench-1)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(press(args.unit, args.button, args.port, args.timeout))
    except LabedgeError as exc:
        print(f"labedge lab button: {exc}", file=sys.stderr)
        return 2


async def press(unit: str, button: str, port: int, timeout: float, root: str = "lab") -> int:
    from lecis.clock import iso_ts
    from lecis.mqtt_session import MqttSession, SessionConfig
    from lecis.wire import Button, encode

    topics = Topics(root)
    pressed_at = iso_ts(datetime.now(UTC))
    answer: list[dict[str, object]] = []
    changed = asyncio.Event()

    def on_message(topic: str, payload: bytes) -> None:
        try:
            session = json.loads(payload)
        except ValueError:
            return
        if not isinstance(session, dict):
            return
        # The retained session from before the press is older than it: only a newer one answers.
        stamp = session.get("started_at") if button == "start" else session.get("ended_at")
        if isinstance(stamp, str) and stamp >= pressed_at:
            answer.append(session)
            changed.set()

    config = SessionConfig(port=port, client_id=None, connect_timeout_s=5.0)
    subscriptions = [topics.hub_session(unit)]
    async with MqttSession(config, subscriptions=subscriptions, on_message=on_message) as session:
        message = Button(button, "pressed", pressed_at)  # type: ignore[arg-type]
        await session.publish(topics.button(unit), encode(message))
        print(f"pressed {button} on {unit}")
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            print(f"the hub changed nothing within {timeout:g} s (a press it refuses makes the unit's LED "
                  f"blink; `labedge session show {unit} --config ...` says why)")
            return 1
    print(f"{unit}: session {answer[0].get('id')} {answer[0].get('state')}")
    return 0
