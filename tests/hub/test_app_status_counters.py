"""`experiment.status` (and the other state replies) hold what the retained experiment state holds."""

from __future__ import annotations

from pathlib import Path

import aiomqtt

from hub.app import Hub
from provisioning.broker import MosquittoProcess
from tests.hub.test_app import command, config, state, unit_and_watch, write_script


async def test_the_status_reply_is_the_retained_state(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    port = mosquitto.port
    async with unit_and_watch(tmp_path, "app-st", port) as (_, found):
        async with Hub(config(tmp_path, port, write_script(tmp_path, "app-st"), "hub-st")) as hub:
            await found.wait_for(lambda: state(found, "hub-st").get("state") == "running", 15, "the run")
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.publish("lab/app-st/valve1/event", b"not json", qos=1)
            await found.wait_for(lambda: state(found, "hub-st").get("bad_messages") == 1, 10, "counted")
            assert hub.link.stats["bad.event"] == 1
            reply = await command(found, port, "s1", "experiment.status")
            retained = state(found, "hub-st")
            assert set(reply["result"]) == set(retained) - {"hub", "ts"}
            assert reply["result"]["bad_messages"] == 1 and reply["result"]["readings_lost"] == 0
            paused = await command(found, port, "s2", "experiment.pause")
            assert paused["result"]["state"] == "paused" and paused["result"]["bad_messages"] == 1
