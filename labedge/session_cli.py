"""`labedge session start|stop|list|show UNIT --config hub.yaml`: the running hub's session log.

Each subcommand is a `session.*` command on `lab/hub/$cmd` through the broker
named in hub.yaml, answered on `lab/hub/$reply` (docs/sessions.md). A refused
start or stop exits 1 and names the open session. `show UNIT --follow`
follows the retained `lab/hub/sessions/UNIT` with a progress bar of its
upload figures until the session is closed (or in error).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 4, 5
FINAL = ("done", "failed", "rejected")
BAR_WIDTH = 30


class CliExit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_session_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    session = subparsers.add_parser(
        "session", help="start, stop, list or show sessions on the running hub",
        description="The running hub's session log (docs/sessions.md), through the broker named in "
                    "hub.yaml.",
        epilog="exit status: 0 done, 1 refused (e.g. a start while a session is open: the message names it), "
               "2 bad arguments or hub.yaml, 4 no answer from the hub, 5 broker unreachable.")
    sub = session.add_subparsers(dest="session_command", required=True, metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser, unit: str = "required") -> None:
        if unit == "required":
            p.add_argument("unit", metavar="UNIT", help="the unit id, e.g. bench-1")
        else:
            p.add_argument("unit", metavar="UNIT", nargs="?", default=None, help="only this unit's sessions")
        p.add_argument("--config", required=True, type=Path, metavar="HUB_YAML",
                       help="the hub's hub.yaml (for its broker and topic root)")
        p.add_argument("--timeout", type=float, default=15.0, metavar="S",
                       help="seconds to wait for the hub's answer (default: 15)")
        p.add_argument("--json", action="store_true", help="print the hub's answer as JSON")
        p.set_defaults(handler=run_session)

    start = sub.add_parser("start", help="open a session on UNIT (refused while one is open)")
    common(start)
    start.add_argument("--experiment", default=None, metavar="NAME", help="the experiment's name")
    start.add_argument("--user", default=None, help="who runs it (default: your user name)")
    stop = sub.add_parser("stop", help="stop UNIT's open session; its final transfer then runs")
    common(stop)
    stop.add_argument("--session", default=None, metavar="ID",
                      help="stop only if this is the open session (refused otherwise)")
    stop.add_argument("--user", default=None, help="who stops it (default: your user name)")
    listing = sub.add_parser("list", help="the sessions, newest first")
    common(listing, unit="optional")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N sessions (default 20)")
    show = sub.add_parser("show", help="UNIT's newest session, its upload figures and events")
    common(show)
    show.add_argument("--follow", action="store_true",
                      help="follow the session's upload with a progress bar until it is closed")


def command_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    name = args.session_command
    out: dict[str, Any] = {}
    if args.unit is not None:
        out["unit"] = args.unit
    if name == "start":
        out["user"] = args.user or getpass.getuser()
        if args.experiment is not None:
            out["experiment"] = args.experiment
    elif name == "stop":
        out["user"] = args.user or getpass.getuser()
        if args.session is not None:
            out["session_id"] = args.session
    elif name == "list":
        out["limit"] = args.limit
    return f"session.{name}", out


def run_session(args: argparse.Namespace) -> int:
    from hub.config import load_hub_config
    from lecis.errors import ConfigError

    try:
        config = load_hub_config(args.config, check_files=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    if not getattr(args, "verbose", False):
        logging.getLogger("labedge.mqtt").setLevel(logging.ERROR)
    what = f"labedge session {args.session_command}"
    try:
        return asyncio.run(_run(config, args))
    except CliExit as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK


async def _run(config: Any, args: argparse.Namespace) -> int:
    from lecis.mqtt_session import SessionOffline

    cmd, cmd_args = command_args(args)
    client = HubClient(config, follow=args.unit if getattr(args, "follow", False) else None)
    try:
        async with client.session:
            reply = await client.call(cmd, cmd_args, args.timeout)
            if reply.get("status") != "done":
                error = reply.get("error") or {}
                kind = error.get("kind")
                raise CliExit(EXIT_REJECTED, f"{reply.get('status')} ({kind}): {error.get('message')}")
            result = reply.get("result") or {}
            if args.json:
                print(json.dumps(result, ensure_ascii=False))
            else:
                print_result(args.session_command, result, sys.stdout)
            if getattr(args, "follow", False) and (result.get("session") or {}).get("id"):
                return await client.follow(str(result["session"]["id"]), sys.stdout)
    except SessionOffline as exc:
        raise CliExit(EXIT_UNREACHABLE, str(exc)) from None
    return EXIT_OK


class HubClient:
    """One short MQTT session to the hub: request/reply on `$cmd`/`$reply`, and the session topic."""

    def __init__(self, config: Any, follow: str | None = None) -> None:
        from hub.link import session_config
        from lecis.mqtt_session import MqttSession, Requests, SessionConfig
        from lecis.topics import Topics

        self.config = config
        self.topics = Topics(config.topic_root)
        self.requests: Requests[dict[str, Any]] = Requests()
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        base = session_config(config)
        subscriptions = [self.topics.hub_reply()]
        self.follow_topic = self.topics.hub_session(follow) if follow else None
        if self.follow_topic:
            subscriptions.append(self.follow_topic)
        self.session = MqttSession(
            SessionConfig(host=base.host, port=base.port, username=base.username, password=base.password,
                          tls_ca=base.tls_ca, client_id=f"labedge-session-{uuid.uuid4().hex[:8]}",
                          connect_timeout_s=5.0),
            subscriptions=subscriptions, on_message=self._message)

    def _message(self, topic: str, payload: bytes) -> None:
        from lecis.wire import from_bytes

        try:
            value = from_bytes(payload)
        except Exception:
            return
        if not isinstance(value, dict):
            return
        if topic == self.follow_topic:
            self.updates.put_nowait(value)
        elif isinstance(value.get("id"), str) and value.get("status") in FINAL:
            self.requests.resolve(value["id"], value)

    async def call(self, cmd: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        from lecis.commands import Command
        from lecis.mqtt_session import RequestTimeout
        from lecis.wire import encode

        command_id = str(uuid.uuid4())
        payload, topic = encode(Command(command_id, cmd, args)), self.topics.hub_cmd()
        try:
            return await self.requests.call(command_id, lambda: self.session.publish(topic, payload),
                                            timeout, cmd)
        except RequestTimeout:
            raise CliExit(EXIT_TIMEOUT, f"no answer from hub {self.config.hub} within {timeout:g} s; is it "
                                        "running (labedge hub run --config ...)?") from None

    async def follow(self, session_id: str, out: TextIO) -> int:
        """Progress until the session is closed (0) or in error (1); Ctrl-C ends it early (0)."""
        tty = out.isatty()
        while True:
            value = await self.updates.get()
            if value.get("id") != session_id:
                continue  # an older retained session, or the unit's next one
            line = progress_line(value)
            out.write(("\r" + line + "\x1b[K") if tty else line + "\n")
            out.flush()
            state = value.get("state")
            if state in ("closed", "error"):
                if tty:
                    out.write("\n")
                reason = value.get("reason")
                print(f"session {session_id} {state}" + (f": {reason}" if reason else ""), file=out)
                return EXIT_OK if state == "closed" else EXIT_REJECTED


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def progress_line(session: dict[str, Any]) -> str:
    """`[#####.....]  50%  3/6 files  1.2 MB/2.4 MB  300.0 kB/s  closing`, from the `upload` figures."""
    upload = session.get("upload") or {}
    done_b, pending_b = _number(upload.get("bytes_done")), _number(upload.get("bytes_pending"))
    done_f, pending_f = _number(upload.get("files_done")), _number(upload.get("files_pending"))
    total_b, total_f = done_b + pending_b, done_f + pending_f
    if total_b > 0:
        share = done_b / total_b
    elif total_f > 0:
        share = done_f / total_f
    else:
        share = 1.0 if session.get("state") == "closed" else 0.0
    filled = round(share * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    errors = _number(upload.get("errors"))
    parts = [f"[{bar}] {share * 100:3.0f}%", f"{done_f:.0f}/{total_f:.0f} files",
             f"{_size(done_b)}/{_size(total_b)}", f"{_size(_number(upload.get('rate_bps')))}/s",
             str(session.get("state"))]
    if errors:
        parts.append(f"{errors:.0f} file error{'s' if errors != 1 else ''}")
    return "  ".join(parts)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _session_line(s: dict[str, Any]) -> str:
    ended = s.get("ended_at") or "-"
    experiment = f"  {s['experiment']}" if s.get("experiment") else ""
    return f"{s.get('id')}  {s.get('unit')}  {s.get('state'):<7}  {s.get('started_at')}  {ended}{experiment}"


def print_result(name: str, result: dict[str, Any], out: TextIO) -> None:
    if name == "list":
        sessions = result.get("sessions") or []
        for s in sessions:
            print(_session_line(s), file=out)
        if not sessions:
            print("no sessions", file=out)
        return
    session = result.get("session")
    if session is None:
        print("no session yet for this unit", file=out)
        return
    if name == "start":
        print(f"session {session['id']} of {session['unit']} open (started {session['started_at']})",
              file=out)
    elif name == "stop":
        print(f"session {session['id']} of {session['unit']} stopped at {session['ended_at']}; "
              f"state {session['state']}: {session.get('reason') or ''}".rstrip(": "), file=out)
    else:
        for key in ("id", "unit", "state", "experiment", "user", "started_at", "started_by", "ended_at",
                    "ended_by", "reason"):
            if session.get(key) is not None:
                print(f"{key + ':':<12}{session[key]}", file=out)
        print(f"{'upload:':<12}{progress_line(session)}", file=out)
        if "files" in result:
            print(f"{'files:':<12}{result['files']} in the upload log", file=out)
        for event in (result.get("events") or [])[-10:]:
            print(f"  {event.get('ts')}  {event.get('kind'):<9}  {event.get('message')}", file=out)
