"""`labedge script apply` against a running hub: a broken version is refused with line:column and the old
one keeps running; a good one takes effect at the next task boundary."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.hub_rig import SYSTEM_SCRIPT, bench, last_state, start_running
from tests.system.processes import stop

pytestmark = pytest.mark.system


async def apply(file: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "labedge", "script", "apply", str(file), "--config",
                         str(config), "--author", "ana", "--timeout", "20"],
        capture_output=True, text=True, timeout=60)


async def test_a_broken_version_is_refused_and_a_good_one_takes_over(tmp_path: Path,
                                                                     mosquitto: MosquittoProcess) -> None:
    unit, port, hub_id = "sys-apply", mosquitto.port, "hub-sys-apply"
    config = tmp_path / "hub" / "hub.yaml"
    v1 = SYSTEM_SCRIPT.format(unit=unit, heat_at="1h")
    broken = tmp_path / "bench" / "broken.yaml"
    good = tmp_path / "bench" / "good.yaml"
    async with probe("127.0.0.1", port, pattern="lab/hub/#") as found:
        hub, _ = await start_running(tmp_path, port, unit, hub_id, found, heat_at="1h")
        try:
            with bench(tmp_path, unit, port):
                await found.wait_for(lambda: last_state(found, hub_id).get("state") == "running", 60,
                                     "the run")
                broken.write_text(v1.replace(f"{unit}/aeration: off", f"{unit}/aeration: of")
                                  .replace("every: 2s", "every: 2 parsecs"))
                refused = await apply(broken, config)
                assert refused.returncode == 1, refused.stderr
                lines = refused.stderr.splitlines()
                assert f"{broken}:7:12: expected a duration such as 30s, 5m, 2h, 1h30m or a number of " \
                       "seconds (above 0), got '2 parsecs'" in lines
                assert any(line.startswith(f"{broken}:11:29: {unit}/aeration: aeration has no command 'of'")
                           for line in lines), refused.stderr
                assert "the running version is unchanged" in refused.stderr
                assert last_state(found, hub_id)["script_version"] == 1
                fired = last_state(found, hub_id)["fired"]["tick"]
                await found.wait_for(lambda: last_state(found, hub_id)["fired"]["tick"] > fired, 10,
                                     "v1 still ticking")

                good.write_text(v1.replace("      - wait: 1s\n      - " + f"{unit}/aeration: off",
                                           "      - wait: 1s\n      - " + f"{unit}/aeration: off\n"
                                           '      - log: "v2 tick"'))
                accepted = await apply(good, config)
                assert accepted.returncode == 0, accepted.stderr
                assert '"version": 2' in accepted.stdout
                await found.wait_for(lambda: any(e.get("message") == "v2 tick" for e in found.on(
                    "lab/hub/experiment/event")), 15, "the new version's log line")
                assert last_state(found, hub_id)["script_version"] == 2
                assert last_state(found, hub_id)["fired"]["tick"] > fired  # the task kept its counter
        finally:
            assert stop(hub) == 0
