"""Outputs safe on the way out, and the unit's last word when it must exit on a fault."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

import aiomqtt

from edge.mqtt_link import session_config
from edge.safety.every_module import on_every_module
from lecis.errors import LabedgeError
from lecis.mqtt_session import session
from lecis.unit_config import BrokerConfig

log = logging.getLogger("labedge.safety")

EXIT_OK = 0
EXIT_FAULT = 70  # EX_SOFTWARE: a task of the unit died beyond repair; supervisord restarts the unit


class Safeable(Protocol):
    id: str

    def make_safe(self, reason: str) -> None: ...


def all_safe(modules: Iterable[Safeable], reason: str) -> None:
    """Every module's running command stopped and outputs to their safe value; never raises."""
    on_every_module(modules, lambda module: module.make_safe(reason), "making outputs safe")


async def last_word(broker: BrokerConfig, topic: str, payload: bytes, timeout_s: float = 3.0) -> bool:
    """Publish one retained message on a connection of its own (the unit's link may be the fault).

    Used when the unit exits on a fault, so the retained `$state` never goes on
    saying `ready` for a unit that is gone. Best effort: False if it did not arrive.
    """
    config = replace(session_config(broker, f"labedge-last-{uuid.uuid4().hex[:8]}"),
                     connect_timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s), session(config) as connected:
            await connected.publish(topic, payload, retain=True)
        return True
    except (LabedgeError, aiomqtt.MqttError, TimeoutError, OSError) as exc:
        log.warning("could not publish %s on the way out: %s", topic, exc)
        return False
