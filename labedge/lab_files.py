"""The files of the one-machine lab: supervisord config, unit config and DCDs on simulators, hub.yaml."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from labedge.lab_button import RUN_DIR, button_socket_path

INSTRUMENTS = (("ph1", "ph"), ("do1", "do"), ("temp1", "rtd"))

SUPERVISOR_HEAD = """\
[supervisord]
logfile={dir}/logs/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}/logs
nodaemon=true

[unix_http_server]
file={dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
"""

PROGRAM = """
[program:{name}]
command={command}
directory={dir}
priority={priority}
autostart={autostart}
autorestart=true
startsecs=1
startretries=20
stopsignal=TERM
stopwaitsecs=10
redirect_stderr=true
stdout_logfile={logdir}/logs/{name}.log
environment={environment}
"""

DCD = """\
# {module}: simulated EZO {probe} circuit (see docs/simulators.md)
module: {module}
driver: ezo
probe: {probe}
port: {port}
baudrate: 9600
period_s: 1
{extra}"""

# Equipment on mock GPIO pins (the lab has no Pi); same pins as examples/.
EQUIPMENT = {
    "base_pump": """\
# base_pump: peristaltic dosing pump on a MOSFET, mock pin in the lab
module: base_pump
driver: gpio.pump
pin: 17
max_on_s: 30
ml_per_s: 0.5
max_ml_per_hour: 100
""",
    "aeration": """\
# aeration: air pump relay, mock pin in the lab
module: aeration
driver: gpio.switch
pin: 27
max_on_s: 3600
on_controller_loss: hold
""",
    "heater": """\
# heater: heating mat relay, mock pin in the lab (the hub's PID drives its duty)
module: heater
driver: gpio.switch
pin: 22
max_on_s: 900
on_controller_loss: "off"
""",
}

# A stepper-driven feed pump on a microcontroller board: the real firmware in simavr when it is
# installed (firmware_bridge/emulated.py), behind DIR/dev/board; the same rules as base_pump.
BOARD_PUMP = """\
# feed_pump: peristaltic pump on the board's stepper output S1 (docs/bridge.md)
module: feed_pump
driver: bridge
port: {port}
channel: S1
max_on_s: 60
watchdog_s: 2
ml_per_s: 0.2
max_rate_hz: 800
"""
BOARD_LINK = "dev/board"

# The experiment the lab's hub runs: the seed's respirometry script, against bench-1.
SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "respirometry.yaml"

HUB = """\
# The one-machine lab's hub: records bench-1 and runs {script}.
hub: hub-1
broker: {{host: 127.0.0.1, port: {port}}}
data_dir: {data_dir}
script: {script}
"""

# The dashboard with one demo account, and sessions uploaded to a local bucket emulator.
DEMO_USER = "demo"
DEMO_PASSWORD = "labedge-demo"  # printed by `labedge lab`; the lab listens on 127.0.0.1 only
LAB_BUCKET = "labedge-lab"
HUB_WEB = """\
web: {{host: 127.0.0.1, port: {web_port}}}
users:
  {user}: {{role: operator, password_hash: "{password_hash}"}}
storage: {{bucket: {bucket}}}
"""

# bench-2: pH and temperature on a second simulated vessel, and a feed pump on a board of its own.
BENCH2_INSTRUMENTS = (("ph1", "ph"), ("temp1", "rtd"))
BENCH2_BOARD_LINK = "dev/bench-2/board"
UNIT2 = """\
# bench-2 of the one-machine lab: pH and temperature, simulated.
unit: bench-2
broker: {{host: 127.0.0.1, port: {port}}}
data_dir: {data_dir}
modules: [{modules}]
buttons: {{start_pin: 5, stop_pin: 6}}
"""
# Each unit program and the simulated ports it needs before its first start.
UNIT_PORTS = {"unit-bench-1": (*(f"dev/{module}" for module, _ in INSTRUMENTS), BOARD_LINK),
              "unit-bench-2": (*(f"dev/bench-2/{module}" for module, _ in BENCH2_INSTRUMENTS),
                               BENCH2_BOARD_LINK)}

UNIT = """\
# bench-1 of the one-machine lab: instruments are simulators on pseudo-terminals.
unit: bench-1
broker: {{host: 127.0.0.1, port: {port}}}
data_dir: {data_dir}
modules: [{modules}]
buttons: {{start_pin: 5, stop_pin: 6}}
status_led: {{pin: 13}}
"""


def _ini(text: object, expansions: int = 1) -> str:
    """A value for supervisor's ini, which expands %(name)s: a literal % doubled per expansion
    (a [program:x]'s stdout_logfile is expanded twice)."""
    return str(text).replace("%", "%" * 2 ** expansions)


def _cmd(*args: object) -> str:
    """A supervisor command line (split like a shell's): each argument quoted, then made ini-safe."""
    return shlex.join(str(arg) for arg in args)


def _y(path: object) -> str:
    """A path as a YAML scalar (JSON strings are YAML): spaces, # and : stay part of it."""
    return json.dumps(str(path))


def unsafe_lab_path(path: Path) -> bool:
    """What supervisor's config cannot carry: quotes and backslashes (environment values), control
    characters, and a # or ; after a space (an ini comment, which nothing escapes)."""
    text = str(path)
    return (any(c in text for c in '"\\') or not text.isprintable()
            or any(f"{space}{mark}" in text for space in " \t" for mark in "#;"))


def write_lab_files(lab_dir: Path, port: int, labedge: str, web_port: int = 8080,
                    bucket_port: int = 9023) -> Path:
    """Write everything under `lab_dir` and return the supervisord config path."""
    from hub.web.passwords import hash_password

    for sub in ("logs", "dev", "dev/bench-2", "bench-1/dcd", "bench-2/dcd", "broker", "hub", "bucket"):
        (lab_dir / sub).mkdir(parents=True, exist_ok=True)
    # The units' button sockets (labedge lab button): a folder nobody else can write or enter.
    (lab_dir / RUN_DIR).mkdir(mode=0o700, exist_ok=True)
    os.chmod(lab_dir / RUN_DIR, 0o700)
    env = 'PYTHONUNBUFFERED="1",GPIOZERO_PIN_FACTORY="mock",GPIOZERO_MOCK_PIN_CLASS="mockpwmpin"'

    def program(name: str, command: str, priority: int, autostart: bool = True, extra_env: str = "") -> str:
        return PROGRAM.format(name=name, command=_ini(command), dir=_ini(lab_dir), logdir=_ini(lab_dir, 2),
                              priority=priority,
                              environment=_ini(env + extra_env), autostart=str(autostart).lower())

    text = SUPERVISOR_HEAD.format(dir=_ini(lab_dir))
    text += program("broker", _cmd(labedge, "broker", "--port", port, "--dir", lab_dir / "broker"), 10)
    # The bucket: gcp-storage-emulator keeps its objects under DIR/bucket/.cloudstorage.
    emulator = Path(sys.executable).with_name("gcp-storage-emulator")
    text += program("bucket", _cmd(emulator, "start", "--host", "127.0.0.1", "--port", bucket_port,
                                   "--default-bucket", LAB_BUCKET, "--quiet"), 12,
                    extra_env=f',STORAGE_BASE="{lab_dir}/bucket"')
    (lab_dir / "hub" / "hub.yaml").write_text(
        HUB.format(port=port, data_dir=_y(lab_dir / "hub" / "data"), script=_y(SCRIPT))
        + HUB_WEB.format(web_port=web_port, user=DEMO_USER, password_hash=hash_password(DEMO_PASSWORD),
                         bucket=LAB_BUCKET))
    text += program("hub", _cmd(labedge, "hub", "run", "--config", lab_dir / "hub" / "hub.yaml"), 15,
                    extra_env=f',STORAGE_EMULATOR_HOST="http://127.0.0.1:{bucket_port}"')
    text += _bench2(lab_dir, port, labedge, program)
    modules = []
    for module, probe in INSTRUMENTS:
        link = lab_dir / "dev" / module
        extra = "temperature_source: temp1\n" if probe in ("ph", "do") else ""
        (lab_dir / "bench-1" / "dcd" / f"{module}.yaml").write_text(
            DCD.format(module=module, probe=probe, port=_y(link), extra=extra))
        modules.append(f"dcd/{module}.yaml")
    for module, dcd in EQUIPMENT.items():
        (lab_dir / "bench-1" / "dcd" / f"{module}.yaml").write_text(dcd)
        modules.append(f"dcd/{module}.yaml")
    (lab_dir / "bench-1" / "dcd" / "feed_pump.yaml").write_text(
        BOARD_PUMP.format(port=_y(lab_dir / BOARD_LINK)))
    modules.append("dcd/feed_pump.yaml")
    board = _cmd(sys.executable, "-m", "firmware_bridge.emulated", "--link", lab_dir / BOARD_LINK)
    text += program("board", board, 20)
    (lab_dir / "bench-1" / "unit.yaml").write_text(
        UNIT.format(port=port, data_dir=_y(lab_dir / "bench-1" / "data"), modules=", ".join(modules)))
    # One respirometry vessel behind bench-1's EZO circuits (on the DCDs' ports), following its
    # aeration, base pump and heater: the hub's script acts on something that answers.
    vessel = _cmd(labedge, "sim", "vessel", "--unit-config", lab_dir / "bench-1" / "unit.yaml")
    text += program("sim-vessel", vessel, 20)
    # Started by `labedge lab` once the simulators' ports exist, so its first start succeeds.
    unit = _cmd(labedge, "edge", "run", "--config", lab_dir / "bench-1" / "unit.yaml", "--pin-factory",
                "mock", "--button-socket", button_socket_path(lab_dir, "bench-1"))
    text += program("unit-bench-1", unit, 30, autostart=False)
    conf = lab_dir / "supervisord.conf"
    conf.write_text(text)
    return conf


def _bench2(lab_dir: Path, port: int, labedge: str, program: Callable[..., str]) -> str:
    """bench-2's files, its simulated vessel and its unit program (started once its ports exist)."""
    modules = []
    for module, probe in BENCH2_INSTRUMENTS:
        extra = "temperature_source: temp1\n" if probe == "ph" else ""
        (lab_dir / "bench-2" / "dcd" / f"{module}.yaml").write_text(
            DCD.format(module=module, probe=probe, port=_y(lab_dir / "dev" / "bench-2" / module),
                       extra=extra))
        modules.append(f"dcd/{module}.yaml")
    (lab_dir / "bench-2" / "dcd" / "feed_pump.yaml").write_text(
        BOARD_PUMP.format(port=_y(lab_dir / BENCH2_BOARD_LINK)))
    modules.append("dcd/feed_pump.yaml")
    (lab_dir / "bench-2" / "unit.yaml").write_text(
        UNIT2.format(port=port, data_dir=_y(lab_dir / "bench-2" / "data"), modules=", ".join(modules)))
    vessel = _cmd(labedge, "sim", "vessel", "--unit-config", lab_dir / "bench-2" / "unit.yaml", "--seed", 2)
    text = program("sim-vessel-2", vessel, 20)
    board = _cmd(sys.executable, "-m", "firmware_bridge.emulated", "--link", lab_dir / BENCH2_BOARD_LINK)
    text += program("board-2", board, 20)
    unit = _cmd(labedge, "edge", "run", "--config", lab_dir / "bench-2" / "unit.yaml", "--pin-factory",
                "mock", "--button-socket", button_socket_path(lab_dir, "bench-2"))
    return text + program("unit-bench-2", unit, 30, autostart=False)
