"""`labedge watch`: print what a lab publishes, readably, for a person at a terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

import aiomqtt

from lecis.topics import Topics
from lecis.wire import WireFormatError, from_bytes


def add_watch_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = subparsers.add_parser("watch", help="print live readings, events and states",
                                  description="Print what units publish, one line per message, "
                                              "until Ctrl-C.")
    watch.add_argument("--host", default="127.0.0.1", help="broker host (default: 127.0.0.1)")
    watch.add_argument("--port", type=int, default=1883, help="broker port (default: 1883)")
    watch.add_argument("--root", default="lab", help="topic root (default: lab)")
    watch.add_argument("--config", type=Path, default=None, metavar="HUB_YAML",
                       help="take the broker (host, port, username, password, tls_ca) and the topic root "
                            "from this hub.yaml: a broker that asks for a login (docs/provisioning.md)")
    watch.set_defaults(handler=run_watch)


def format_message(topics: Topics, topic: str, payload: Any) -> str | None:
    """One line for a person, or None for messages not worth a line."""
    parts = topics.split(topic)
    if parts is None or not isinstance(payload, dict):
        return None
    unit, target, leaf = parts
    if unit == "hub":
        return format_hub_message(target, leaf, payload)
    if target == "$state":
        return f"{unit:<12} unit is {payload.get('state')}"
    if leaf == "data":
        values = []
        for reading in payload.get("readings", []):
            values += [f"{k}={v}" for k, v in reading.get("values", {}).items()]
        hist = " (backlog)" if payload.get("hist") else ""
        return f"{unit + '/' + target:<20} #{payload.get('seq'):<6} {' '.join(values)}{hist}"
    if leaf == "event":
        return (f"{unit + '/' + target:<20} {str(payload.get('level')).upper()} {payload.get('code')}: "
                f"{payload.get('message')}")
    if leaf == "state":
        error = payload.get("error")
        extra = f" ({error.get('code')}: {error.get('message')})" if isinstance(error, dict) else ""
        outputs = payload.get("outputs") or {}
        shown = f" outputs {outputs}" if outputs else ""
        return f"{unit + '/' + target:<20} state {payload.get('lecis')}{shown}{extra}"
    return None


def format_hub_message(target: str, leaf: str, payload: dict[str, Any]) -> str | None:
    """`lab/hub/$state` and the experiment's state and events (docs/protocol.md, The hub)."""
    if target == "$state":
        return f"{'hub':<12} {'online' if payload.get('online') else 'offline'}"
    if target != "experiment":
        return None
    if leaf == "event":
        return f"{'experiment':<20} {str(payload.get('level')).upper()} {payload.get('code')}: " \
               f"{payload.get('message')}"
    if leaf == "state":
        loops = " ".join(f"{name}={loop.get('output', loop.get('on'))}"
                         for name, loop in (payload.get("loops") or {}).items() if isinstance(loop, dict))
        due = payload.get("next_due") or []
        following = f" next {due[0].get('task')} at {due[0].get('due')}" if due and isinstance(due[0], dict) \
            else ""
        return (f"{'experiment':<20} {payload.get('state')} v{payload.get('script_version')} "
                f"{loops}{following} lost={payload.get('readings_lost')}")
    return None


async def watch(host: str, port: int, topics: Topics, out: TextIO, username: str | None = None,
                password: str | None = None, tls_ca: str | None = None) -> None:
    tls = ssl.create_default_context(cafile=tls_ca) if tls_ca else None
    while True:
        try:
            async with aiomqtt.Client(host, port, username=username, password=password,
                                      tls_context=tls) as client:
                await client.subscribe(topics.all_filter(), qos=1)
                print(f"watching {topics.all_filter()} on {host}:{port} (Ctrl-C to stop)", file=out,
                      flush=True)
                async for message in client.messages:
                    raw = message.payload if isinstance(message.payload, bytes) else b""
                    try:
                        payload = from_bytes(raw)
                    except WireFormatError:
                        continue
                    line = format_message(topics, message.topic.value, payload)
                    if line:
                        print(line, file=out, flush=True)
        except aiomqtt.MqttError as exc:
            print(f"broker {host}:{port} not reachable ({exc}); retrying", file=out, flush=True)
            await asyncio.sleep(1.0)


def until_interrupted(run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `run()` on a loop of its own thread until it ends or Ctrl-C.

    Ctrl-C ends the process at once: cancelling the MQTT client inside
    asyncio.run can wait forever on a disconnect the broker never confirms
    (a broker stopping at the same moment, as when a lab stops).
    """
    done = threading.Event()

    def target() -> None:
        try:
            asyncio.run(run())
        finally:
            done.set()

    threading.Thread(target=target, name="watch", daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        while not done.wait(0.5):
            pass


def run_watch(args: argparse.Namespace) -> int:
    if args.config is None:
        until_interrupted(lambda: watch(args.host, args.port, Topics(args.root), sys.stdout))
        return 0
    from hub.config import load_hub_config
    from lecis.errors import ConfigError

    try:
        hub = load_hub_config(args.config, check_files=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    broker = hub.broker
    until_interrupted(lambda: watch(broker.host, broker.port, Topics(hub.topic_root), sys.stdout,
                                    broker.username, broker.password, broker.tls_ca))
    return 0
