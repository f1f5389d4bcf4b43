"""The broker's own round trip, measured beside every latency figure so the two compare."""

from __future__ import annotations

import asyncio
import time
import uuid

from lecis.mqtt_session import MqttSession, SessionConfig


async def broker_round_trips(port: int, tries: int) -> list[float]:
    """Seconds from a QoS 1 publish to its delivery back to the same session, `tries` times."""
    topic = f"bench/ping/{uuid.uuid4().hex}"
    times: list[float] = []
    got = asyncio.Event()
    async with MqttSession(SessionConfig(port=port), subscriptions=[topic],
                           on_message=lambda t, p: got.set()) as session:
        for i in range(tries):
            got.clear()
            start = time.monotonic()
            await session.publish(topic, str(i), qos=1)
            await got.wait()
            times.append(time.monotonic() - start)
    return times
