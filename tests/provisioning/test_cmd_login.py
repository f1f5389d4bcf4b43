"""`labedge cmd --config hub.yaml` logs in to the locked-down broker as the hub, the account that commands."""

from __future__ import annotations

import subprocess
import sys

from tests.provisioning.conftest import Hub


def test_cmd_with_the_hub_config_reaches_the_unit_on_the_provisioned_broker(hub: Hub) -> None:
    unit_a = hub.client("bench-a", "labedge-unit-bench-a")
    try:
        assert unit_a.subscribe("lab/bench-a/$cmd") == 1
        # No unit answers here: the command arriving at bench-a's topic is what the login proves.
        done = subprocess.run([sys.executable, "-m", "labedge", "cmd", "bench-a", "STATUS", "--config",
                               str(hub.out / "hub.yaml"), "--timeout", "1"],
                              capture_output=True, text=True, timeout=60)
        unit_a.wait(lambda: unit_a.messages != [], "labedge cmd's STATUS at bench-a")
        assert unit_a.messages[0][0] == "lab/bench-a/$cmd"
        assert b'"STATUS"' in unit_a.messages[0][1]
        assert done.returncode == 4, done.stderr  # the broker let it in; no unit replied
    finally:
        unit_a.close()
