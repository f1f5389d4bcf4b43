"""`labedge hub run --config hub.yaml` (the hub process) and `labedge script apply FILE --config hub.yaml`.

Start-up refuses in one place, each reason printed and exit status 2, before
anything runs: the configuration (every problem), the script (every problem
with line:column), then the data folder (one hub per data_dir).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from lecis.errors import ConfigError, LabedgeError

log = logging.getLogger("labedge.hub")

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 4, 5
EXIT_DUPLICATE_ID = 3  # another hub runs with this hub's id: a configuration to fix, not to retry
EXIT_FAULT = 70  # as the unit's: something failed beyond repair, supervisord starts the process again


def add_hub_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = subparsers.add_parser("hub", help="the hub process: experiment controller and recorder",
                                description="Run or check the hub.")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")
    run = hub_sub.add_parser(
        "run", help="run the hub from its hub.yaml (or check it with --check)",
        description="Run the hub: its MQTT session, the recorder (database and run files) and the "
                    "experiment controller running hub.yaml's script. Exit status 2 when it cannot start "
                    "(each reason on one line), 3 when another hub runs with the same hub id.")
    run.add_argument("--config", required=True, type=Path, metavar="HUB_YAML", help="path of the hub.yaml")
    run.add_argument("--check", action="store_true",
                     help="check hub.yaml, its script and the session log, print each problem, and exit "
                          "(0 fine, 2 problems); nothing is started")
    run.set_defaults(handler=run_hub)
    from hub.simulate.cli import add_simulate_parser
    from hub.web.users_cli import add_user_parser

    add_simulate_parser(hub_sub)
    add_user_parser(hub_sub)


def add_apply_parser(script_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`labedge script apply`: registered by labedge/script_cli.py beside `script check`."""
    apply = script_sub.add_parser(
        "apply", help="send a new version of the script to the running hub",
        description="Send FILE to the running hub as the new version of its script. The hub checks it "
                    "first: a rejected version leaves the running one untouched, and every problem is "
                    "printed as file:line:column. An accepted one takes effect at the next task boundary.",
        epilog="exit status: 0 applied, 1 rejected, 2 bad arguments or hub.yaml, 4 no answer from the hub, "
               "5 broker unreachable.")
    apply.add_argument("file", type=Path, metavar="FILE", help="the new version of the script")
    apply.add_argument("--config", required=True, type=Path, metavar="HUB_YAML",
                       help="the hub's hub.yaml (for its broker and topic root)")
    apply.add_argument("--author", default=None, help="who made this version (default: your user name)")
    apply.add_argument("--timeout", type=float, default=30.0, metavar="S",
                       help="seconds to wait for the hub's answer (default: 30)")
    apply.set_defaults(handler=run_apply)


def _print_config_problems(exc: ConfigError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    print(f"labedge: {len(exc.problems)} problem(s) in the configuration; nothing was started",
          file=sys.stderr)


def run_hub(args: argparse.Namespace) -> int:
    from hub.app import check_start_script
    from hub.config import load_hub_config
    from hub.script.errors import ScriptError

    try:
        config = load_hub_config(args.config)
    except ConfigError as exc:
        _print_config_problems(exc)
        return EXIT_USAGE
    try:
        script = check_start_script(config)
    except ScriptError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"labedge: {len(exc.problems)} problem(s) in the script; nothing was started", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        from hub.sessions.log import LOG_NAME, check_log

        try:  # read only: safe beside the running hub
            sessions = check_log(config.data_dir / LOG_NAME)
        except LabedgeError as exc:
            print(f"labedge: {exc}", file=sys.stderr)
            return EXIT_USAGE
        what = f"script {script.experiment!r} on {', '.join(script.units)}" if script else "no script"
        print(f"{args.config}: hub {config.hub} with {what} is fine (session log: {sessions} sessions)")
        return EXIT_OK
    try:
        return asyncio.run(_serve(config))
    except LabedgeError as exc:
        print(f"labedge: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _serve(config: Any) -> int:
    from hub.app import Hub

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Hub(config) as hub:
        # What start-up made (modules, script, tables) lives as long as the hub: out of the collector's
        # full passes, which otherwise walk all of it (tens of ms, readings and commands waiting).
        gc.collect()
        gc.freeze()
        log.info("hub %s running (data in %s)", config.hub, config.data_dir)
        await hub.wait(stop)
        failed = hub.controller is not None and hub.controller.failed.is_set()
        duplicate = hub.link.duplicate
    if duplicate is not None:
        print(f"labedge: {duplicate}", file=sys.stderr)
        return EXIT_DUPLICATE_ID
    if failed:
        print("labedge: the experiment controller failed (see the log); exiting so that the hub is started "
              "again and resumes the run", file=sys.stderr)
        return EXIT_FAULT
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    from hub.config import load_hub_config

    try:
        config = load_hub_config(args.config, check_files=False)
    except ConfigError as exc:
        _print_config_problems(exc)
        return EXIT_USAGE
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"labedge script apply: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    author = args.author or getpass.getuser()
    if not getattr(args, "verbose", False):
        logging.getLogger("labedge.mqtt").setLevel(logging.ERROR)
    return asyncio.run(apply_script(config, text, author, args.timeout, str(args.file)))


def script_too_large(text: str) -> str | None:
    """Why the hub would refuse `text` for its size (its script and `$cmd` limits), or None."""
    from hub.hub_commands import MAX_COMMAND_BYTES, MAX_SCRIPT_CHARS
    from lecis.wire import to_bytes

    if len(text) > MAX_SCRIPT_CHARS:
        return f"the script is {len(text)} characters; the hub takes scripts of at most {MAX_SCRIPT_CHARS}"
    size = len(to_bytes({"text": text}))
    if size > MAX_COMMAND_BYTES - 4096:  # the id, author and source fit in the rest
        return (f"the script is {size} bytes as JSON; the hub takes commands of at most "
                f"{MAX_COMMAND_BYTES} bytes")
    return None


async def apply_script(config: Any, text: str, author: str, timeout: float, source: str) -> int:
    """Send `script.apply` to the hub on `config`'s broker and print its answer; returns the exit status."""
    from hub.link import session_config
    from lecis.commands import Command
    from lecis.mqtt_session import MqttSession, Requests, RequestTimeout, SessionConfig, SessionOffline
    from lecis.topics import Topics
    from lecis.wire import encode, from_bytes

    problem = script_too_large(text)
    if problem is not None:
        print(f"labedge script apply: {source}: {problem}; nothing was sent", file=sys.stderr)
        return EXIT_USAGE
    topics = Topics(config.topic_root)
    base = session_config(config)
    command_id = str(uuid.uuid4())
    requests: Requests[dict[str, Any]] = Requests()

    def on_message(topic: str, payload: bytes) -> None:
        reply = from_bytes(payload)
        if isinstance(reply, dict) and reply.get("id") == command_id and \
                reply.get("status") in ("done", "failed", "rejected"):
            requests.resolve(command_id, reply)

    session = MqttSession(SessionConfig(host=base.host, port=base.port, username=base.username,
                                        password=base.password, tls_ca=base.tls_ca,
                                        client_id=f"labedge-apply-{command_id[:8]}", connect_timeout_s=5.0),
                          subscriptions=[topics.hub_reply()], on_message=on_message)
    # The file's name travels with the text so the hub's problems name it (file:line:column).
    command = Command(command_id, "script.apply", {"text": text, "author": author, "source": source})
    try:
        async with session:
            payload, topic = encode(command), topics.hub_cmd()
            reply = await requests.call(command_id, lambda: session.publish(topic, payload), timeout,
                                        "script.apply")
    except SessionOffline as exc:
        print(f"labedge script apply: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except RequestTimeout:
        print(f"labedge script apply: no answer from hub {config.hub} within {timeout:g} s; is it running "
              f"(labedge hub run --config ...)?", file=sys.stderr)
        return EXIT_TIMEOUT
    if reply.get("status") == "done":
        result = reply.get("result") or {}
        print(json.dumps(result, ensure_ascii=False))
        return EXIT_OK
    problems = (reply.get("result") or {}).get("problems")
    if isinstance(problems, list) and problems:
        from hub.script.errors import ScriptProblem

        for p in problems:
            print(ScriptProblem(str(p.get("file")), p.get("line"), p.get("column"), str(p.get("message"))),
                  file=sys.stderr)
        print(f"labedge script apply: rejected, {len(problems)} problem(s); the running version is "
              f"unchanged", file=sys.stderr)
    else:
        error = reply.get("error") or {}
        print(f"labedge script apply: {reply.get('status')} ({error.get('kind')}): {error.get('message')}",
              file=sys.stderr)
    return EXIT_REJECTED
