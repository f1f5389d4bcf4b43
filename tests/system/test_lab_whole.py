"""`labedge lab`: the whole lab under one supervisord, up to the experiment running, then Ctrl-C.

Broker, bucket emulator, hub with its dashboard, the board emulator, two
simulated vessels and two units. The test waits for what a user would see:
both units ready, the respirometry run `running`, a session open on
bench-1, the dashboard answering; then it presses Ctrl-C and checks that
every output of bench-1 went off before the broker closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from provisioning.broker import free_port, wait_listening
from tests.brokers import require_mosquitto
from tests.provisioning.broker_clients import Client

EQUIPMENT = ("base_pump", "aeration", "heater", "feed_pump")


def _lab(tmp: Path, port: int, web: int, bucket: int, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "labedge", "lab", "--dir", str(tmp), "--port", str(port),
            "--web-port", str(web), "--bucket-port", str(bucket)]  # with its readings, as `make run`
    with log.open("ab") as out:
        # Its own process group, as in a terminal: Ctrl-C signals the whole group.
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _tails(log: Path, logs: Path, lines: int = 15) -> str:
    """The end of the lab's output and of every program's log, to see which one did not come up."""
    out = []
    for path in [log, *sorted(logs.glob("*.log"))]:
        with contextlib.suppress(OSError):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
    return "\n".join(out)


def test_the_whole_lab_runs_the_experiment_and_stops_with_every_output_off(tmp_path: Path) -> None:
    require_mosquitto()
    port, web, bucket = free_port(), free_port(), free_port()
    lab_dir = tmp_path / "lab"
    log = tmp_path / "lab.log"
    lab = _lab(lab_dir, port, web, bucket, log)
    watcher: Client | None = None
    try:
        wait_listening("127.0.0.1", port, timeout=60)
        watcher = Client(port, None, None, "lab-test")
        watcher.subscribe("lab/#")

        def last(topic: str) -> dict[str, object] | None:
            for t, raw in reversed(watcher.messages):  # type: ignore[union-attr]
                if t == topic and raw:
                    value = json.loads(raw)
                    return value if isinstance(value, dict) else None
            return None

        def up() -> bool:
            states = [last(f"lab/{unit}/$state") for unit in ("bench-1", "bench-2")]
            experiment = last("lab/hub/experiment/state")
            session = last("lab/hub/sessions/bench-1")
            return (all(s is not None and s.get("state") == "ready" for s in states)
                    and experiment is not None and experiment.get("state") == "running"
                    and session is not None and session.get("state") == "open")

        try:
            watcher.wait(up, "both units ready, the experiment running, a session open", 120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_tails(log, lab_dir / 'logs')}") from None
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10) as page:
            assert page.status == 200
        # The unit's own button pins: a stop press closes bench-1's session, a start press opens one,
        # and the unit sends each press itself (its `$button` message).
        opened = last("lab/hub/sessions/bench-1")
        assert opened is not None
        for button, state in (("stop", "clos"), ("start", "open")):
            pressed = subprocess.run([sys.executable, "-m", "labedge", "lab", "button", "bench-1", button,
                                      "--dir", str(lab_dir)], capture_output=True, text=True, timeout=60)
            assert pressed.returncode == 0, pressed.stderr
            assert "bench-1: session " in pressed.stdout and f" {state}" in pressed.stdout, pressed.stdout
        presses = [json.loads(raw) for t, raw in watcher.messages if t == "lab/bench-1/$button"]
        actions = [(p["button"], p["action"]) for p in presses]
        assert actions[-2:] == [("stop", "pressed"), ("start", "pressed")]
        # A held stop is the unit's ESTOP, done by the unit itself; the hub's login clears it.
        held = subprocess.run([sys.executable, "-m", "labedge", "lab", "button", "bench-2", "stop", "--hold",
                               "--dir", str(lab_dir)], capture_output=True, text=True, timeout=60)
        assert held.returncode == 0 and "bench-2: ESTOP" in held.stdout, (held.stdout, held.stderr)
        assert ("stop", "held") in [(json.loads(raw)["button"], json.loads(raw)["action"])
                                    for t, raw in watcher.messages if t == "lab/bench-2/$button"]
        assert (last("lab/bench-2/feed_pump/state") or {}).get("lecis") == "ESTOPPED"
        hub_yaml = str(lab_dir / "hub" / "hub.yaml")
        cleared = subprocess.run([sys.executable, "-m", "labedge", "cmd", "bench-2", "CLEAR", "--config",
                                  hub_yaml], capture_output=True, text=True, timeout=60)
        assert cleared.returncode == 0, (cleared.stdout, cleared.stderr)
        watcher.wait(lambda: (last("lab/bench-2/feed_pump/state") or {}).get("lecis") == "IDLE",
                     "bench-2's feed pump IDLE after CLEAR")
        def reopened() -> bool:
            session = last("lab/hub/sessions/bench-1")
            return session is not None and session["state"] == "open" and session["id"] != opened["id"]

        watcher.wait(reopened, "a new session open on bench-1")
        # A second lab in the same folder says so and changes nothing.
        second = subprocess.run([sys.executable, "-m", "labedge", "lab", "--dir", str(lab_dir), "--port",
                                 str(free_port()), "--no-watch"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "a lab is already running in" in second.stderr
        # ... and one in another folder names the busy port.
        third = subprocess.run([sys.executable, "-m", "labedge", "lab", "--dir", str(tmp_path / "other"),
                                "--port", str(port), "--no-watch"], capture_output=True, text=True,
                               timeout=60)
        assert third.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in third.stderr
        # Ctrl-C: the lab and supervisord get it (supervisord puts its programs in groups of their own).
        os.killpg(lab.pid, signal.SIGINT)
        assert lab.wait(90) == 0
        for module in EQUIPMENT:
            state = last(f"lab/bench-1/{module}/state")
            assert state is not None, module
            assert state["outputs"]["on"] is False, (module, state)  # type: ignore[index]
        final = last("lab/bench-1/$state")
        assert final is not None and final["state"] == "disconnected", final
        state = last("lab/bench-2/feed_pump/state")
        assert state is not None and state["outputs"]["on"] is False, state  # type: ignore[index]
        output = log.read_text()
        assert f"dashboard: http://127.0.0.1:{web}/" in output and "login: demo / labedge-demo" in output
        assert f"buttons: labedge lab button bench-1 stop|start --dir {lab_dir}" in output
        assert "labedge lab: stopped" in output
    finally:
        if watcher is not None:
            watcher.close()
        if lab.poll() is None:
            lab.send_signal(signal.SIGINT)
            try:
                lab.wait(60)
            except subprocess.TimeoutExpired:
                lab.kill()
