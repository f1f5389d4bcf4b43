"""`labedge hub user add NAME --role operator --config hub.yaml`: an argon2 hash into hub.yaml's users:.

The password is read from the terminal (asked twice) or one line of stdin
with `--password-stdin`; never from the command line, where `ps` and the
shell history would show it. The rest of hub.yaml is kept as written
(comments too); the changed file is checked with the hub's own loader
before it replaces the old one (temporary file, fsync, rename).
"""

from __future__ import annotations

import argparse
import getpass
import io
import sys
from pathlib import Path
from typing import Any

from hub.web.settings import ROLES, USER_NAME

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
MIN_PASSWORD = 8


def add_user_parser(hub_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = hub_sub.add_parser("user", help="dashboard users in hub.yaml",
                              description="Manage the dashboard's users (hub.yaml's users:).")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    add = user_sub.add_parser(
        "add", help="add a user (or set a new password with --replace)",
        description="Write NAME with an argon2 hash of a password into hub.yaml's users:. The password "
                    "is asked twice on the terminal, or read as one line from stdin with --password-stdin; "
                    "it is never stored or accepted as an argument. Restart the hub to use it.",
        epilog="exit status: 0 written, 1 refused (user exists, passwords differ), 2 bad arguments or "
               "hub.yaml")
    add.add_argument("name", metavar="NAME", help="user name: lower-case letters, digits, '.', '_', '-'")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer reads; operator also acts")
    add.add_argument("--config", required=True, type=Path, metavar="HUB_YAML", help="the hub.yaml to change")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--replace", action="store_true", help="replace an existing user's role and password")
    add.set_defaults(handler=run_user_add)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        print("labedge hub user add: the two passwords differ; nothing was written", file=sys.stderr)
        return None
    return first


def run_user_add(args: argparse.Namespace) -> int:
    from ruamel.yaml import YAML

    from hub.config import load_hub_config
    from lecis.errors import ConfigError

    if not USER_NAME.match(args.name):
        print(f"labedge hub user add: {args.name!r} is not a user name (1 to 32 lower-case letters, digits, "
              "'.', '_' or '-')", file=sys.stderr)
        return EXIT_USAGE
    try:
        original = args.config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"labedge hub user add: cannot read {args.config}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    yaml = YAML(typ="rt")
    yaml.width = 4096  # the hash on its own line, unwrapped
    try:
        doc: Any = yaml.load(original)
    except Exception as exc:  # ruamel's errors have no common base worth naming here
        print(f"labedge hub user add: {args.config} is not YAML ({exc}); fix it first", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(doc, dict):
        print(f"labedge hub user add: {args.config} is not a hub.yaml mapping", file=sys.stderr)
        return EXIT_USAGE
    users = doc.get("users")
    if users is None:
        users = doc["users"] = {}
    if not isinstance(users, dict):
        print(f"labedge hub user add: users: in {args.config} is not a mapping", file=sys.stderr)
        return EXIT_USAGE
    if args.name in users and not args.replace:
        print(f"labedge hub user add: user {args.name} exists in {args.config}; add --replace to give it a "
              "new role and password", file=sys.stderr)
        return EXIT_REFUSED
    password = _password(args)
    if password is None:
        return EXIT_REFUSED
    if len(password) < MIN_PASSWORD:
        print(f"labedge hub user add: a password needs at least {MIN_PASSWORD} characters; nothing was "
              "written", file=sys.stderr)
        return EXIT_REFUSED
    from hub.web.passwords import hash_password
    from lecis.atomic_file import write_atomic

    users[args.name] = {"role": args.role, "password_hash": hash_password(password)}
    out = io.StringIO()
    yaml.dump(doc, out)
    candidate = args.config.with_name(f".{args.config.name}.check")
    try:
        candidate.write_text(out.getvalue(), encoding="utf-8")
        load_hub_config(candidate, check_files=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(str(problem).replace(str(candidate), str(args.config)), file=sys.stderr)
        print(f"labedge hub user add: {args.config} has problems; fix them first, nothing was written",
              file=sys.stderr)
        return EXIT_USAGE
    finally:
        candidate.unlink(missing_ok=True)
    write_atomic(args.config, out.getvalue().encode())
    print(f"{args.config}: user {args.name} ({args.role}) written; a running hub reads it at once")
    return EXIT_OK
