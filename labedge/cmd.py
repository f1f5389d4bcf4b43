"""`labedge cmd UNIT[/MODULE] COMMAND [key=value ...]`: one command, its replies as JSON lines.

For a technician at a bench: `labedge cmd bench-1/pump1 run seconds=5`
takes the lease as holder `cli` (unless `--lease TOKEN`), sends the
command, prints every reply (accepted, running, done) as it comes, gives the
lease back, and exits with a status read from the final reply (EXIT_CODES).
Built on `hub.unit_client`, like the hub's own controller.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from labedge.cmd_args import CmdUsageError, Target, needs_lease, parse_args, parse_broker, parse_target
from lecis.errors import ConfigError

if TYPE_CHECKING:
    from hub.unit_client import UnitClient

EXIT_CODES = {"done": 0, "failed": 1, "rejected": 3}
EXIT_USAGE = 2
EXIT_TIMEOUT = 4  # the broker answered, the unit did not (stopped, or not connected)
EXIT_UNREACHABLE = 5  # no broker at --broker
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM, after the lease was given back
HOLDER = "cli"

EPILOG = """\
values: 5 and 2.5 are numbers, true/false booleans, null nothing, "5" (with the
quotes, e.g. name='"5"') text; anything else is text. --json '{...}' for lists
and objects.

exit status: 0 done, 1 failed, 2 bad arguments, 3 rejected (kind and message
printed), 4 no final reply in time, 5 broker unreachable, 130 interrupted.

The lease taken for the command is released when it ends, and the unit then
applies each module's on_controller_loss policy: with policy off, `on` is
undone as soon as labedge cmd exits (run seconds=N is what to test a pump
with). To keep an output on, take a lease yourself
(`labedge cmd bench-1 lease.acquire holder=me ttl_s=300`) and pass --lease.
"""


def add_cmd_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = subparsers.add_parser(
        "cmd", help="send one command to a unit or module and print its replies",
        description="Send COMMAND to a unit (UNIT) or one of its modules (UNIT/MODULE) and print each "
                    "reply as one JSON line.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("target", metavar="UNIT[/MODULE]", help="e.g. bench-1 (unit commands) or bench-1/pump1")
    cmd.add_argument("command", metavar="COMMAND",
                     help="STATUS, ESTOP, CLEAR, RESET, on, off, run, dose, lease.acquire, ... "
                          "(the module's $birth lists its commands)")
    cmd.add_argument("args", nargs="*", metavar="KEY=VALUE", help="command arguments, e.g. seconds=5")
    cmd.add_argument("--json", dest="json_args", metavar="ARGS",
                     help="arguments as one JSON object; KEY=VALUE pairs are applied on top")
    cmd.add_argument("--lease", metavar="TOKEN",
                     help="use this lease token instead of acquiring (and releasing) one as holder cli")
    cmd.add_argument("--broker", default=None, metavar="HOST:PORT",
                     help="the broker (default: hub.yaml's with --config, else 127.0.0.1:1883)")
    cmd.add_argument("--config", type=Path, default=None, metavar="HUB_YAML",
                     help="log in as the hub: the broker (host, port, username, password, tls_ca) and the "
                          "topic root from this hub.yaml, for a broker that asks for a login "
                          "(docs/provisioning.md)")
    cmd.add_argument("--root", default=None, help="topic root (default: hub.yaml's with --config, else lab)")
    cmd.add_argument("--timeout", type=float, default=60.0, metavar="S",
                     help="seconds to wait for the final reply (default: 60); the lease lasts 10 s longer")
    cmd.set_defaults(handler=run_cmd)


def run_cmd(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):  # stdout is JSON and stderr the outcome; no session chatter
        logging.getLogger("labedge.mqtt").setLevel(logging.WARNING)
    try:
        target = parse_target(args.target)
        arguments = parse_args(args.args, args.json_args)
        login = _login(args)
    except CmdUsageError as exc:
        print(f"labedge cmd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    host, port = login.host, login.port
    if not 0 < args.timeout < 86400:
        print("labedge cmd: --timeout must be above 0 and under a day", file=sys.stderr)
        return EXIT_USAGE
    try:  # a quick, clear answer when nothing listens, before the session's patient reconnecting
        socket.create_connection((host, port), timeout=3.0).close()
    except OSError as exc:
        print(f"labedge cmd: cannot reach the broker at {host}:{port} ({exc.strerror or exc})",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    return asyncio.run(send_command(host, port, login.root, target, args.command, arguments,
                                    args.lease, args.timeout, sys.stdout, sys.stderr, login))


@dataclass(frozen=True)
class Login:
    """Where `labedge cmd` connects and as whom (no account: an open broker)."""

    host: str = "127.0.0.1"
    port: int = 1883
    root: str = "lab"
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None


def _login(args: argparse.Namespace) -> Login:
    """--config's broker and root, then --broker and --root on top of them."""
    login = Login()
    if args.config is not None:
        from hub.config import load_hub_config

        hub = load_hub_config(args.config, check_files=False)
        broker = hub.broker
        login = Login(broker.host, broker.port, hub.topic_root, broker.username, broker.password,
                      broker.tls_ca)
    if args.broker is not None:
        host, port = parse_broker(args.broker)
        login = replace(login, host=host, port=port)
    if args.root is not None:
        login = replace(login, root=args.root)
    return login


async def send_command(host: str, port: int, root: str, target: Target, command: str,
                       arguments: dict[str, Any], lease: str | None, timeout: float,
                       out: TextIO, err: TextIO, login: Login | None = None) -> int:
    """Connect, lease if needed, send, print the replies; returns the exit status.

    Ctrl-C or SIGTERM cancels the command's wait; the lease it took is given
    back on the way out, so the unit applies its loss policy at once rather
    than when the lease would have expired.
    """
    from hub.unit_client import connected_client
    from lecis.topics import Topics

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        account = login or Login()
        async with connected_client(host, port, target.unit, holder=HOLDER, topics=Topics(root),
                                    username=account.username, password=account.password,
                                    tls_ca=account.tls_ca) as client:
            return await _leased_call(client, target, command, arguments, lease, timeout, out, err)
    except ConnectionError as exc:  # the session's SessionOffline: the broker went away
        print(f"labedge cmd: lost the broker at {host}:{port}: {exc}", file=err)
        return EXIT_UNREACHABLE
    except asyncio.CancelledError:  # the way out for Ctrl-C (asyncio.run cancels us) and SIGTERM
        print(f"labedge cmd: interrupted; {command} may still be running on {target} unless the lease "
              "given back stopped it", file=err)
        return EXIT_INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _leased_call(client: UnitClient, target: Target, command: str, arguments: dict[str, Any],
                       lease: str | None, timeout: float, out: TextIO, err: TextIO) -> int:
    from hub.unit_client import ReplyTimeout

    token = lease
    acquired = False
    try:
        if lease is None and needs_lease(command):
            reply = await client.acquire(ttl_s=timeout + 10.0)
            if reply.get("status") != "done":
                _print(reply, out)
                print(f"labedge cmd: no lease on {target.unit}: {_why(reply)}", file=err)
                return EXIT_CODES.get(str(reply.get("status")), EXIT_CODES["rejected"])
            token, acquired = client.token, True
        final = await _call_printing(client, target, command, arguments, token, timeout, out)
    except ReplyTimeout as exc:
        print(f"labedge cmd: {exc}", file=err)
        return EXIT_TIMEOUT
    finally:
        if acquired:
            await _release(client, token, err)
    status = str(final.get("status"))
    if status != "done":
        print(f"labedge cmd: {command} {status}: {_why(final)}", file=err)
    return EXIT_CODES.get(status, EXIT_CODES["failed"])


async def _call_printing(client: UnitClient, target: Target, command: str, arguments: dict[str, Any],
                         token: str | None, timeout: float, out: TextIO) -> dict[str, Any]:
    """`client.call`, printing every reply to the command as it arrives, the final one included."""
    command_id = str(uuid.uuid4())
    printed = 0

    def flush() -> None:
        nonlocal printed
        replies = client.replies.get(command_id, [])
        for reply in replies[printed:]:
            _print(reply, out)
        printed = len(replies)

    async def follow() -> None:
        # UnitClient keeps every reply in its public `replies` log and has no per-reply callback;
        # a short poll of that log shows accepted/running while a long command runs.
        while True:
            flush()
            await asyncio.sleep(0.05)

    follower = asyncio.create_task(follow())
    try:
        final: dict[str, Any] = await client.call(target.module, command, arguments,
                                                  lease=token, timeout=timeout, command_id=command_id)
        return final
    finally:
        follower.cancel()
        flush()


async def _release(client: UnitClient, token: str | None, err: TextIO) -> None:
    from hub.unit_client import ReplyTimeout

    try:
        reply = await client.call(None, "lease.release", {}, lease=token, timeout=5.0)
    except (ReplyTimeout, ConnectionError) as exc:
        print(f"labedge cmd: could not release the lease ({exc}); it expires by itself", file=err)
        return
    if reply.get("status") != "done":
        print(f"labedge cmd: lease.release {reply.get('status')}: {_why(reply)}", file=err)


def _print(reply: dict[str, Any], out: TextIO) -> None:
    text = json.dumps(reply, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: printable only escaped
        text = json.dumps(reply)
    print(text, file=out, flush=True)


def _why(reply: dict[str, Any]) -> str:
    error = reply.get("error")
    if isinstance(error, dict):
        kind = error.get("kind")
        param = f" ({error['param']})" if error.get("param") else ""
        return f"{kind}{param}: {error.get('message')}"
    return "no reason given"
