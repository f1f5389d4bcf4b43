"""Outputs safe on the way out, and the unit's last word when it must exit on a fault."""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Iterable
from typing import Protocol

import aiomqtt

from lecis.mqtt_options import NO_DELAY_SOCKET_OPTIONS
from lecis.unit_config import BrokerConfig

log = logging.getLogger("labedge.safety")

EXIT_OK = 0
EXIT_FAULT = 70  # EX_SOFTWARE: a task of the unit died beyond repair; supervisord restarts the unit


class Safeable(Protocol):
    id: str

    def make_safe(self, reason: str) -> None: ...


def all_safe(modules: Iterable[Safeable], reason: str) -> None:
    """Every module's running command stopped and outputs to their safe value; never raises."""
    for module in modules:
        try:
            module.make_safe(reason)
        except Exception:
            log.exception("module %s could not be made safe; carrying on with the others", module.id)


async def last_word(broker: BrokerConfig, topic: str, payload: bytes, timeout_s: float = 3.0) -> bool:
    """Publish one retained message on a connection of its own (the unit's link may be the fault).

    Used when the unit exits on a fault, so the retained `$state` never goes on
    saying `ready` for a unit that is gone. Best effort: False if it did not arrive.
    """
    tls = ssl.create_default_context(cafile=broker.tls_ca) if broker.tls_ca else None
    client = aiomqtt.Client(broker.host, broker.port, identifier=f"labedge-last-{uuid.uuid4().hex[:8]}",
                            username=broker.username, password=broker.password, tls_context=tls,
                            timeout=timeout_s, socket_options=NO_DELAY_SOCKET_OPTIONS)
    try:
        async with asyncio.timeout(timeout_s):
            async with client:
                await client.publish(topic, payload, qos=1, retain=True)
        return True
    except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
        log.warning("could not publish %s on the way out: %s", topic, exc)
        return False
