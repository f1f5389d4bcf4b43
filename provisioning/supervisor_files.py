"""supervisord program files for a unit and for the hub (Debian's `supervisor` package includes
`/etc/supervisor/conf.d/*.conf`)."""

from __future__ import annotations

from provisioning.inventory import FleetSettings, HubSettings

UNIT_PROGRAM = "labedge-unit"
UNIT_PROGRAM_PATH = "/etc/supervisor/conf.d/labedge-unit.conf"
HUB_PROGRAM = "labedge-hub"
BROKER_PROGRAM = "labedge-broker"
# A stopping unit turns every output off first, then flushes the broker link (2 s) and waits for
# the link task (3 s); 30 s leaves room for a slow SD card before supervisord sends SIGKILL.
UNIT_STOP_WAIT_S = 30
HUB_STOP_WAIT_S = 30  # the recorder syncs its files and the hub releases its leases


def program(name: str, command: str, user: str | None, log: str, *, priority: int, stopwaitsecs: int,
            environment: str = 'PYTHONUNBUFFERED="1"') -> str:
    """A [program:NAME] section; `user` None runs it as supervisord's own user."""
    user_line = "" if user is None else f"user={user}\n"
    return f"""\
[program:{name}]
command={command}
{user_line}priority={priority}
autostart=true
autorestart=true
startsecs=5
startretries=1000
; TERM: the process turns its outputs off and says goodbye on MQTT before it exits.
stopsignal=TERM
stopwaitsecs={stopwaitsecs}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={log}
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
environment={environment}
"""


def unit_program(unit: str, fleet: FleetSettings) -> str:
    """The unit process under supervisord; it restarts forever, and a stop gives it time to go safe."""
    command = f"{fleet.labedge} edge run --config {fleet.config_dir}/unit.yaml"
    return (f"; labedge unit {unit}: written by `labedge provision`.\n"
            + program(UNIT_PROGRAM, command, fleet.login, f"{fleet.log_dir}/unit.log", priority=20,
                      stopwaitsecs=UNIT_STOP_WAIT_S))


def hub_programs(hub: HubSettings, fleet: FleetSettings, mosquitto: str, install_dir: str) -> str:
    """Mosquitto with the generated config, then the hub process."""
    # Started as supervisord's user (root on the hub), Mosquitto switches to its own user itself.
    broker = program(BROKER_PROGRAM, f"{mosquitto} -c {install_dir}/mosquitto.conf", None,
                     f"{fleet.log_dir}/broker.log", priority=10, stopwaitsecs=10)
    hub_cmd = f"{fleet.labedge} hub run --config {install_dir}/hub.yaml"
    return (f"; labedge hub {hub.id}: written by `labedge provision hub`. Mosquitto starts as root and\n"
            f"; switches to user {hub.mosquitto_user} (the `user` line of mosquitto.conf).\n"
            + broker + "\n" + program(HUB_PROGRAM, hub_cmd, fleet.login, f"{fleet.log_dir}/hub.log",
                                      priority=20, stopwaitsecs=HUB_STOP_WAIT_S))
