"""The hub's broker files: mosquitto.conf, the password file, the ACL, and hub.yaml (pure text).

Every unit U logs in as U and may publish only its own topics under
`<root>/U/` (state, birth, data, events, replies, buttons), never a `cmd`
topic, and may read only its own `cmd` topics. The hub account reads and
writes everything (only it commands units); the monitor account only reads.
"""

from __future__ import annotations

import json

from lecis.topics import Topics
from provisioning.broker import queued_messages_for
from provisioning.credentials import mosquitto_hash, mosquitto_verify
from provisioning.inventory import HUB_ACCOUNT, MONITOR_ACCOUNT, FleetSettings, HubSettings

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
CONF_FILE = "mosquitto.conf"
TLS_DIR = "tls"
UNIT_LEAVES = ("state", "data", "event", "reply")  # what a module of a unit publishes


def mosquitto_conf(hub: HubSettings, install_dir: str, units: int) -> str:
    """The broker config; `install_dir` is where these files live on the hub."""
    queued = queued_messages_for(units=max(units, 1))
    lines = [
        f"# labedge broker for hub {hub.id}: written by `labedge provision hub`; do not edit, re-provision.",
        "persistence true",
        f"persistence_location {hub.data_dir}/mosquitto/",
        "autosave_interval 60",
        f"user {hub.mosquitto_user}",
        "# Small packets (PUBACKs, ESTOPs) leave at once instead of waiting for a delayed ACK.",
        "set_tcp_nodelay true",
        "# Every unit may replay its whole outbox while the hub is away: the hub's persistent session",
        f"# must queue all of it ({units} unit(s) x the outbox's 1,000,000 messages + a tenth;",
        "# docs/outbox.md, \"Brokers\").",
        f"max_queued_messages {queued}",
        "max_queued_bytes 0",
        "# The forwarder's window is the one in-flight limit.",
        "max_inflight_messages 0",
        "allow_anonymous false",
        f"password_file {install_dir}/{PASSWORD_FILE}",
        f"acl_file {install_dir}/{ACL_FILE}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
    ]
    if hub.tls is not None:
        lines += [
            "# The hub's own processes, on this machine only.",
            f"listener {hub.port} 127.0.0.1",
            "# The units, over TLS.",
            f"listener {hub.tls_port}",
            f"cafile {install_dir}/{TLS_DIR}/ca.crt",
            f"certfile {install_dir}/{TLS_DIR}/server.crt",
            f"keyfile {install_dir}/{TLS_DIR}/server.key",
            "tls_version tlsv1.2",
        ]
    else:
        lines += [
            "# No certificates in the inventory: units connect in plain MQTT, passwords travel unencrypted.",
            "# Add hub.tls (ca, cert, key) to the inventory to listen on 8883 with TLS instead.",
            f"listener {hub.port}",
        ]
    return "\n".join(lines) + "\n"


def password_file(accounts: dict[str, str], previous: str = "") -> str:
    """`name:$7$...` lines, one per account, in name order.

    A line of `previous` whose hash still matches the account's password is kept
    as it was, so re-provisioning one unit changes that unit's line only.
    """
    old = dict(line.split(":", 1) for line in previous.splitlines() if ":" in line)
    lines = []
    for name, password in sorted(accounts.items()):
        kept = old.get(name)
        hashed = kept if kept and mosquitto_verify(password, kept) else mosquitto_hash(password)
        lines.append(f"{name}:{hashed}\n")
    return "".join(lines)


def acl_file(units: list[str], topic_root: str) -> str:
    topics = Topics(topic_root)
    lines = ["# labedge broker ACL: written by `labedge provision hub`; do not edit, re-provision.",
             "# Nothing is allowed that is not listed; anonymous clients are refused.", "",
             f"user {HUB_ACCOUNT}", f"topic readwrite {topics.all_filter()}", "topic read $SYS/#", "",
             f"user {MONITOR_ACCOUNT}", f"topic read {topics.all_filter()}", ""]
    for unit in sorted(units):
        lines += [f"user {unit}",
                  f"topic write {topics.unit_state(unit)}",
                  f"topic write {topics.birth(unit)}",
                  f"topic write {topics.unit_reply(unit)}",
                  f"topic write {topics.button(unit)}",
                  *[f"topic write {topics.module_filter(unit, leaf)}" for leaf in UNIT_LEAVES],
                  f"topic read {topics.unit_cmd(unit)}",
                  f"topic read {topics.module_cmd_filter(unit)}",
                  ""]
    return "\n".join(lines)


def hub_yaml(hub: HubSettings, fleet: FleetSettings, password: str) -> str:
    """The hub's config: it reaches the broker on loopback with the hub account."""
    lines = [f"# Hub {hub.id}: written by `labedge provision hub`. It holds the hub's MQTT password: "
             "mode 0600.",
             f"hub: {hub.id}",
             "broker:",
             "  host: 127.0.0.1",
             f"  port: {hub.port}",
             f"  username: {HUB_ACCOUNT}",
             f"  password: {json.dumps(password)}",
             f"data_dir: {json.dumps(hub.data_dir)}",
             f"topic_root: {json.dumps(fleet.topic_root)}"]
    if hub.script is not None:
        lines.append(f"script: {json.dumps(hub.script)}")
    if hub.bucket is not None:
        lines += ["storage:", f"  bucket: {hub.bucket}"]
    return "\n".join(lines) + "\n"
