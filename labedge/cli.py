"""The `labedge` command: one entry point, a subcommand per part."""

from __future__ import annotations

import argparse
import logging
import sys

from lecis.version import software_version


def build_parser() -> argparse.ArgumentParser:
    from edge.cli import add_edge_parser
    from firmware_bridge.cli import add_bridge_parser
    from hub.cli import add_hub_parser
    from labedge.cmd import add_cmd_parser
    from labedge.lab import add_lab_parser
    from labedge.script_cli import add_script_parser
    from labedge.session_cli import add_session_parser
    from labedge.watch import add_watch_parser
    from provisioning.cli import add_provision_parser
    from sim.cli import add_sim_parser

    parser = argparse.ArgumentParser(
        prog="labedge", description="Edge runtime for laboratory benches: units, simulators, the "
                                    "one-machine lab and tools. `labedge COMMAND --help` for each.")
    parser.add_argument("--version", action="version", version=f"labedge {software_version()}",
                        help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_edge_parser(sub)
    add_hub_parser(sub)
    add_sim_parser(sub)
    add_lab_parser(sub)
    add_watch_parser(sub)
    add_cmd_parser(sub)
    add_script_parser(sub)
    add_session_parser(sub)
    add_provision_parser(sub)
    add_bridge_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("mqtt").setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
