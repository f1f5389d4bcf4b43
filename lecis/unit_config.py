"""The checked unit configuration (`unit.yaml`), built by `lecis.config_loader`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lecis.dcd import Dcd


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 10
    tls_ca: str | None = None  # path of a CA file; TLS is on when set


@dataclass(frozen=True)
class OutboxConfig:
    max_messages: int = 1_000_000  # oldest dropped beyond this, with an alarm event
    sync_interval_s: float = 1.0  # how often the outbox is flushed to the disk itself


@dataclass(frozen=True)
class ButtonsConfig:
    start_pin: int | None = None
    stop_pin: int | None = None
    estop_hold_s: float = 2.0
    debounce_s: float = 0.05
    pull_up: bool = True  # buttons wired to ground


@dataclass(frozen=True)
class UnitConfig:
    unit: str
    source: str  # path of the unit.yaml, for messages
    broker: BrokerConfig
    data_dir: Path
    modules: tuple[Dcd, ...]
    topic_root: str = "lab"
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    status_led_pin: int | None = None
    max_lease_ttl_s: float = 300.0
