"""`labedge session`: the progress bar from the retained figures, and what it says when the hub is away."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from labedge.session_cli import progress_line
from provisioning.broker import MosquittoProcess
from tests.system.hub_rig import write_hub


def test_the_progress_bar_counts_bytes_and_files() -> None:
    upload = {"files_done": 3, "files_pending": 1, "bytes_done": 1_500_000, "bytes_pending": 500_000,
              "rate_bps": 250_000.0, "errors": 2}
    line = progress_line({"state": "closing", "upload": upload})
    assert line.startswith("[" + "#" * 22 + "." * 8 + "]  75%")
    assert "3/4 files" in line and "1.5 MB/2.0 MB" in line and "250.0 kB/s" in line
    assert line.endswith("closing  2 file errors")
    assert progress_line({"state": "closed", "upload": {}}).startswith("[" + "#" * 30 + "] 100%")
    hostile = progress_line({"state": "open", "upload": {"files_pending": "x", "bytes_done": None}})
    assert hostile.startswith("[" + "." * 30 + "]   0%")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labedge", "session", *args], capture_output=True, text=True,
                          timeout=60)


def test_no_broker_exits_5_and_no_hub_exits_4(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    away = write_hub(tmp_path / "away", closed_port, None, hub="hub-away")
    unreachable = run("list", "--config", str(away))
    assert unreachable.returncode == 5, unreachable.stderr
    silent = write_hub(tmp_path / "silent", mosquitto.port, None, hub="hub-not-running")
    no_answer = run("start", "bench-1", "--config", str(silent), "--timeout", "1")
    assert no_answer.returncode == 4
    assert "no answer from hub hub-not-running within 1 s; is it running" in no_answer.stderr
    bad = run("list", "--config", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr
