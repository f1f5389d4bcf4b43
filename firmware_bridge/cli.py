"""`labedge bridge PORT ...`: a technician's tool for a board on a serial port.

    labedge bridge /dev/ttyACM0                 the board's HELLO and a PING
    labedge bridge /dev/ttyACM0 set D2 on       D2 on until Ctrl-C (refreshed), then off
    labedge bridge /dev/ttyACM0 set D2 on --for 5
    labedge bridge /dev/ttyACM0 pwm D3 128 --for 5
    labedge bridge /dev/ttyACM0 step S1 -500 --for 5
    labedge bridge /dev/ttyACM0 read A0
    labedge bridge /dev/ttyACM0 status

Do not run it on a port a unit is using: the two would fight over the board.
Exit status: 0 done, 2 no board (the message says why), 3 the board refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from typing import Any

ACTIONS = ("ping", "hello", "set", "pwm", "step", "read", "status")
KIND_OF = {"set": "SET", "pwm": "PWM", "step": "STEP"}
USE = {"SET": "set {ch} on|off", "PWM": "pwm {ch} DUTY (0..255)", "STEP": "step {ch} RATE (-2000..2000)"}


def add_bridge_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "bridge", help="talk to a microcontroller board: ping, HELLO, toggle a channel by hand",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("port", metavar="PORT", help="the board's serial port (e.g. /dev/ttyACM0)")
    p.add_argument("action", nargs="?", default="ping", choices=ACTIONS,
                   help="ping (default) or hello: print the board's HELLO; set/pwm/step CHANNEL VALUE; "
                        "read CHANNEL; status")
    p.add_argument("args", nargs="*", metavar="ARG", help="channel and value: set D2 on, pwm D3 128, "
                   "step S1 -500, read A0")
    p.add_argument("--for", dest="hold_s", type=float, default=None, metavar="SECONDS",
                   help="keep a set/pwm/step output for this long, then back to its default "
                        "(default: until Ctrl-C)")
    p.add_argument("--baudrate", type=int, default=115200, help="line speed (default 115200)")
    p.add_argument("--timeout", type=float, default=4.0, metavar="SECONDS",
                   help="how long to wait for the board after opening the port (default 4)")
    p.set_defaults(handler=run_bridge)


class UsageProblem(Exception):
    pass


def _output_value(action: str, args: list[str]) -> tuple[str, int]:
    if len(args) != 2:
        raise UsageProblem(f"{action} needs CHANNEL VALUE, e.g. "
                           + {"set": "set D2 on", "pwm": "pwm D3 128", "step": "step S1 -500"}[action])
    from firmware_bridge.board import CHANNEL, DIGITAL, PWM, STEPPER, command_of

    channel, text = args[0].upper(), args[1].lower()
    if CHANNEL.match(channel) and channel in (*DIGITAL, *PWM, *STEPPER) \
            and command_of(channel) != KIND_OF[action]:
        # the channel decides the frame: `set D3 on` would send PWM D3 1 (duty 1/255), not "on"
        raise UsageProblem(f"{action} {channel}: {channel} is not a {action} output; use "
                           + USE[command_of(channel)].format(ch=channel))
    if action == "set" and text in ("on", "off", "1", "0"):
        return channel, 1 if text in ("on", "1") else 0
    try:
        value = int(text)
    except ValueError:
        raise UsageProblem(f"{action} {channel}: value {args[1]!r} is not a whole number"
                           + (" (or on/off)" if action == "set" else "")) from None
    return channel, value


def run_bridge(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except UsageProblem as exc:
        print(f"labedge bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    import logging

    from firmware_bridge.board import Board
    from firmware_bridge.transport import HELLO_WAIT_S, BoardNotConnected, BoardRefused, Transport
    from lecis.clock import SystemClock
    from lecis.errors import SettingInvalid

    if args.timeout is None or not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageProblem(f"--timeout {args.timeout}: give a number of seconds above 0")
    if args.hold_s is not None and (not math.isfinite(args.hold_s) or args.hold_s <= 0):
        raise UsageProblem(f"--for {args.hold_s}: give a number of seconds above 0")
    if args.baudrate <= 0:
        raise UsageProblem(f"--baudrate {args.baudrate}: give the board's line speed, e.g. 115200")
    if args.action in ("set", "pwm", "step"):
        channel, value = _output_value(args.action, args.args)
    elif args.action == "read" and len(args.args) != 1:
        raise UsageProblem("read needs CHANNEL, e.g. read A0")
    if "://" not in args.port and not os.path.exists(args.port):
        print(f"labedge bridge: {args.port} does not exist; is the board plugged in? "
              "(ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id/)", file=sys.stderr)
        return 2
    if not getattr(args, "verbose", False):  # the problems are printed once, below
        logging.getLogger("labedge.bridge").setLevel(logging.ERROR)
    # a board that already runs sends no HELLO: give up waiting for one in time for the PING
    transport = Transport(args.port, baudrate=args.baudrate, max_backoff_s=0.5,
                          hello_wait_s=min(HELLO_WAIT_S, args.timeout / 2))
    board = Board(transport, SystemClock())
    async with board:
        try:
            await transport.wait_connected(args.timeout)
        except BoardNotConnected as exc:
            print(f"labedge bridge: no board: {exc}", file=sys.stderr)
            return 2
        try:
            if args.action in ("ping", "hello"):
                return await _ping(board, args.action)
            if args.action == "read":
                raw = await board.read(args.args[0].upper())
                print(f"{args.args[0].upper()} {raw} ({raw * 5.0 / 1024:.3f} V at a 5 V reference)")
                return 0
            if args.action == "status":
                ok = await transport.request("STATUS")
                print(" ".join(ok.values))
                return 0
            return await _hold(board, args.action, channel, value, args.hold_s)
        except BoardRefused as exc:
            print(f"labedge bridge: {exc}", file=sys.stderr)
            return 3
        except SettingInvalid as exc:
            print(f"labedge bridge: {exc}", file=sys.stderr)
            return 2
        except BoardNotConnected as exc:
            print(f"labedge bridge: board lost: {exc}", file=sys.stderr)
            return 2


async def _ping(board: Any, action: str) -> int:
    from firmware_bridge import frames

    t = board.transport
    hello = t.hello
    if hello is not None:
        print(frames.encode(hello).decode().strip())
        print(f"board on {t.port}: protocol {hello.protocol}, firmware {hello.firmware}, "
              f"boot id {hello.boot_id}")
    else:
        print(f"board on {t.port}: answered, but sent no HELLO (it ran before the port opened)")
    if action == "ping":
        started = time.perf_counter()
        executed = await board.ping()
        print(f"PING answered in {(time.perf_counter() - started) * 1000:.1f} ms; "
              f"requests executed since boot: {executed}")
        stats = await t.request("STATS")
        if len(stats.values) == 5:
            names = ("bad_crc", "bad_frame", "overlong", "duplicates", "rx_overflow")
            print("board counters since boot: " + ", ".join(f"{n} {v}" for n, v in zip(names, stats.values,
                                                                                          strict=True)))
    return 0


async def _hold(board: Any, action: str, channel: str, value: int, hold_s: float | None) -> int:
    wanted = board.want(channel, value, None)
    await board.confirm(wanted, 2.0)
    shown = ("on" if value else "off") if action == "set" else str(value)
    if value == 0:
        print(f"{channel} {shown}")
        return 0
    until = "until Ctrl-C" if hold_s is None else f"for {hold_s:g} s"
    print(f"{channel} {shown} {until} (refreshed; the board's watchdog ends it if this stops)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), hold_s)
    await board.confirm(board.want(channel, 0, None), 2.0)
    print(f"{channel} back to its default")
    return 0
