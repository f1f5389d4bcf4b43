"""A press the session log cannot store (the disk is full): refused on the unit's LED, said, nothing lost.

The hub runs in this process (real Mosquitto, a real unit on mock pins) so
that its session log's writes can be made to fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.unit_extras import ButtonsAndLed
from hub.app import Hub
from provisioning.broker import MosquittoProcess
from tests.hub.test_app import config, unit_and_watch
from tests.system.test_sessions import START_PIN, press


async def test_a_press_that_cannot_be_stored_blinks_the_refusal_and_says_why(
        tmp_path: Path, mosquitto: MosquittoProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = "ses-full"
    async with unit_and_watch(tmp_path, unit, mosquitto.port) as (rig, found), \
            Hub(config(tmp_path, mosquitto.port, None, "hub-ses-full")) as hub:
        await found.wait_for(lambda: unit in hub.births, 15, "the unit's birth seen by the hub")
        extras = rig.unit.extras[0]
        assert isinstance(extras, ButtonsAndLed) and extras.led is not None
        led = extras.led
        storage = hub.sessions.log.storage

        def full_disk() -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(storage, "_flush", full_disk)
        await press(rig, START_PIN)
        await found.wait_for(lambda: led.refusals == 1, 15, "the refusal blink")
        said = await found.wait_for(lambda: [e for e in found.on("lab/hub/experiment/event")
                                             if e.get("code") == "session_refused"
                                             and e.get("hub") == "hub-ses-full"], 10, "the refusal said")
        assert "No space left on device" in said[-1]["message"]
        assert hub.sessions.list() == [] and hub.sessions.current(unit) is None
        monkeypatch.undo()
        await press(rig, START_PIN)  # the disk has room again: the next press opens the session
        await found.wait_for(lambda: hub.sessions.current(unit) is not None, 15, "the session opened")
        assert hub.sessions.current(unit).started_by.value == "button"
