"""Load and check `hub.yaml`, reporting every problem at once with file:line.

The strict loader (`lecis.yaml_loader`) reads the file; unknown keys are
problems with a "did you mean". Later hub issues add top-level keys
(storage, upload, watch, users, http): each one goes into HUB_KEYS together
with its reader here, and nothing unknown is accepted meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hub.upload.settings import StorageConfig, UploadConfig, WatchEntry, read_upload_settings
from hub.web.settings import User, WebConfig, check_web_users, read_users, read_web
from lecis.config_loader import read_broker
from lecis.errors import ConfigError
from lecis.topics import TOPIC_ROOT, UNIT_ID
from lecis.unit_config import BrokerConfig
from lecis.yaml_loader import Fields, load_yaml

WHAT = "a hub config: key: value lines such as hub:, broker: and data_dir:"
HUB_KEYS = ("hub", "broker", "data_dir", "script", "topic_root", "lease_ttl_s", "command_timeout_s",
            "unit_wait_s", "web", "users", "storage", "upload", "watch")


@dataclass(frozen=True)
class HubConfig:
    """The checked hub.yaml; paths are absolute (relative ones taken from the file's folder)."""

    hub: str
    source: str
    broker: BrokerConfig
    data_dir: Path
    script: Path | None = None
    topic_root: str = "lab"
    lease_ttl_s: float = 30.0  # the lease asked of each unit; renewed every third of it
    command_timeout_s: float = 10.0  # no final reply by then: the outcome is `timeout`
    unit_wait_s: float = 300.0  # a command waits this long for its unit (or the broker) to come back
    web: WebConfig | None = None  # the dashboard and HTTP API (hub/web/settings.py)
    users: tuple[User, ...] = ()
    storage: StorageConfig | None = None  # the bucket sessions upload to (hub/upload/settings.py)
    upload: UploadConfig = field(default_factory=UploadConfig)
    watch: dict[str, tuple[WatchEntry, ...]] = field(default_factory=dict)  # per unit: folders uploaded

    @property
    def client_id(self) -> str:
        """The fixed MQTT client id of the hub's persistent session."""
        return f"labedge-hub-{self.hub}"


def load_hub_config(path: Path, check_files: bool = True) -> HubConfig:
    """Load `hub.yaml`; raises ConfigError listing every problem.

    With `check_files`, the script and the broker's TLS CA file must exist.
    """
    doc = load_yaml(path, WHAT)
    f = Fields(doc)
    base = path.parent
    f.mapping((), HUB_KEYS)
    hub = f.string(("hub",), None, required=True, pattern=UNIT_ID,
                   expected="a hub id (lower-case letters, digits and -, up to 32 characters, e.g. hub-1)")
    broker = read_broker(f, base, (lambda path: Path(path).is_file()) if check_files else None,
                         required=True)
    data_dir = f.string(("data_dir",), None, required=True,
                        expected="a folder for the hub's database, run files and state (e.g. ./var/hub)")
    script = f.string(("script",), None, nullable=True, expected="the path of an experiment script")
    script_path = None
    if script is not None:
        script_path = _absolute(base, script)
        if check_files and not script_path.is_file():
            state = "is a folder, not a script file" if script_path.is_dir() else "does not exist"
            f.problem(("script",), f"script {script_path} {state}")
    topic_root = f.string(("topic_root",), "lab", pattern=TOPIC_ROOT,
                          expected="a topic root (letters, digits, _, - and /, e.g. lab)")
    ttl = f.number(("lease_ttl_s",), 30.0, minimum=3, maximum=3600)
    timeout = f.number(("command_timeout_s",), 10.0, above=0, maximum=3600)
    unit_wait = f.number(("unit_wait_s",), 300.0, minimum=0, maximum=86400)
    web, users = read_web(f), read_users(f)
    check_web_users(f, web, users)
    uploads = read_upload_settings(f, base, check_files)
    if f.problems or hub is None or data_dir is None:
        raise ConfigError(sorted(f.problems, key=lambda p: p.line or 0))
    return HubConfig(hub, doc.source, broker, _absolute(base, data_dir), script_path, topic_root, ttl,
                     timeout, unit_wait, web=web, users=users, storage=uploads.storage,
                     upload=uploads.upload, watch=uploads.watch)


def _absolute(base: Path, text: str) -> Path:
    return Path(os.path.abspath(base / Path(text).expanduser()))
