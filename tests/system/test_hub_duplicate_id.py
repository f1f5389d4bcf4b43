"""Two hubs with the same `hub:` id (different data_dirs) on one broker: each keeps taking the other's MQTT
session. Both say why, raise an alarm and exit with status 3, instead of splitting the readings forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli import EXIT_DUPLICATE_ID
from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.hub_rig import exited, start_hub, write_hub
from tests.system.processes import stop

pytestmark = pytest.mark.system


async def test_two_hubs_with_one_id_both_stop_saying_why(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    port = mosquitto.port
    async with probe("127.0.0.1", port, pattern="lab/hub/#") as found:
        hubs = []
        try:
            for name in ("a", "b"):
                config = write_hub(tmp_path / name, port, None, hub="hub-twin")
                hubs.append(start_hub(config, tmp_path / f"{name}.log"))
            codes = [await exited(proc, 60) for proc in hubs]
        finally:
            for proc in hubs:
                stop(proc)
        assert codes == [EXIT_DUPLICATE_ID, EXIT_DUPLICATE_ID]
        for name in ("a", "b"):
            log = (tmp_path / f"{name}.log").read_text()
            assert "another MQTT client with client id 'labedge-hub-hub-twin' keeps taking this hub's " \
                   "session over" in log, log[-3000:]
            assert "Each hub needs its own `hub:` id in its hub.yaml" in log
        await found.wait_for(lambda: any(e.get("code") == "duplicate_hub_id" and e.get("level") == "alarm"
                                         for e in found.on("lab/hub/experiment/event")), 10, "the alarm")
