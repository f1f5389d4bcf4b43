"""A second hub on the dashboard's port: it says which address is taken and what to change, no traceback,
and the first one goes on serving."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from provisioning.broker import MosquittoProcess, free_port
from tests.browser.rig import users_yaml, wait_http
from tests.system.hub_rig import start_hub, write_hub
from tests.system.processes import stop


def test_a_second_hub_on_the_same_web_port_is_refused_clearly(mosquitto: MosquittoProcess,
                                                               tmp_path: Path) -> None:
    port = free_port()
    extra = f"web: {{host: 127.0.0.1, port: {port}}}\n{users_yaml()}"
    first = write_hub(tmp_path / "one", mosquitto.port, None, hub="hub-1", extra=extra)
    second = write_hub(tmp_path / "two", mosquitto.port, None, hub="hub-2", extra=extra)
    log1, log2 = tmp_path / "one.log", tmp_path / "two.log"
    hub1 = start_hub(first, log1)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, hub1, log1)
        hub2 = start_hub(second, log2)
        try:
            code = hub2.wait(60)
        finally:
            stop(hub2)
        said = log2.read_text()
        assert code != 0
        assert f"127.0.0.1:{port}" in said and "web: port" in said and str(second) in said
        assert "Traceback" not in said
        with urllib.request.urlopen(url + "api/openapi.json", timeout=10) as answer:
            assert answer.status == 200
        assert hub1.poll() is None
    finally:
        stop(hub1)
