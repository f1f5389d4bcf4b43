"""schemathesis against the running hub's /api/openapi.json with an operator's token, on a fixed budget:
no 500 anywhere, and every status code answered is one the document lists for that route."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from provisioning.broker import MosquittoProcess
from tests.browser.rig import ARTIFACTS, web_lab

BUDGET_S = 30  # the fuzzing phases repeat until it is spent
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")


def test_the_api_survives_schemathesis(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    with web_lab(tmp_path, mosquitto.port) as lab:
        token = lab.token()
        report = ARTIFACTS / "schemathesis"
        report.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{lab.url}api/openapi.json",
                   "--header", f"Authorization: Bearer {token}", "--checks", CHECKS,
                   "--max-time", str(BUDGET_S), "--seed", "1", "--workers", "1",
                   "--exclude-path", "/api/logout", "--exclude-path", "/api/login",
                   "--request-timeout", "20", "--suppress-health-check", "all", "--no-color"]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
        # cwd: schemathesis keeps a cache folder where it runs; not in the working tree.
        run = subprocess.run(command, capture_output=True, text=True, timeout=BUDGET_S * 3 + 60, env=env,
                             cwd=tmp_path)
        (report / "output.txt").write_text(run.stdout + run.stderr)
        hub_log = lab.log.read_text()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    failed = re.findall(r"(?:GET|POST|PUT|DELETE) /api/\S* failed", hub_log)
    assert not failed, hub_log[-3000:]


