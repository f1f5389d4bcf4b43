"""The dashboard's figures, in Debian's Chromium against a real hub process and Mosquitto.

Run: `.venv/bin/python -m bench.dashboard_bench [--units 50] [--modules 5] [--pages 5] [--seconds 30]`.

1. First load: bytes of every response of the signed-in page's first load
   (HTML, CSS, JS, vendored uPlot, the first API calls; target < 500 KB), and
   the time from opening the page to the first live point drawn into a chart
   (target < 2 s), with the lab of part 2 already publishing.
2. Load: `--units` simulated units of `--modules` modules each publish one
   reading per module per second (retained $state, $birth and module states
   first, as a unit does) from one publisher process; `--pages` dashboards are
   open, each on another unit. Over `--seconds`: the hub process's CPU (% of
   one core) and resident memory, and the delay from a reading's timestamp at
   its "unit" to its arrival in a page (p50, p99, max), over every page.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from lecis.clock import iso_ts
from lecis.topics import Topics
from provisioning.broker import MosquittoProcess, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
USER, PASSWORD = "bench", "bench-password"


def now() -> str:
    return iso_ts(datetime.now(UTC))


class Lab(threading.Thread):
    """Simulated units: retained presence, birth and module states, then 1 Hz readings per module."""

    def __init__(self, port: int, units: int, modules: int) -> None:
        super().__init__(daemon=True)
        self.topics = Topics("lab")
        self.units = [f"sim-{n:02d}" for n in range(units)]
        self.modules = [f"m{n}" for n in range(modules)]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-lab-{uuid.uuid4().hex[:6]}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.sent = 0

    def announce(self) -> None:
        birth_modules = {m: {"kind": "instrument", "driver": "sim", "description": "",
                             "readings": [{"name": "value", "unit": "mg/L", "range": [0, 20]}],
                             "commands": {}, "on_controller_loss": "off"} for m in self.modules}
        for unit in self.units:
            boot = str(uuid.uuid4())
            birth = {"unit": unit, "version": "bench", "boot": boot, "ts": now(), "modules": birth_modules}
            self.client.publish(self.topics.birth(unit), json.dumps(birth), qos=1, retain=True)
            self.client.publish(self.topics.unit_state(unit), json.dumps({"state": "ready", "boot": boot,
                                                                          "ts": now()}), qos=1, retain=True)
            for module in self.modules:
                state: dict[str, Any] = {"lecis": "IDLE", "control": "REMOTE", "outputs": {}, "error": None,
                                         "ts": now()}
                self.client.publish(self.topics.module_state(unit, module), json.dumps(state), qos=1,
                                    retain=True)

    def run(self) -> None:
        seq = 0
        start = time.monotonic()
        while not self.stop.is_set():
            seq += 1
            for unit in self.units:
                for n, module in enumerate(self.modules):
                    payload = {"seq": seq, "hist": False,
                               "readings": [{"ts": now(), "values": {"value": 8 + n + (seq % 10) / 10}}]}
                    self.client.publish(self.topics.data(unit, module), json.dumps(payload), qos=1)
                    self.sent += 1
            self.stop.wait(max(0.0, start + seq - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        for unit in self.units:  # retained presence cleared: the next run starts clean
            for topic in [self.topics.birth(unit), self.topics.unit_state(unit)] + \
                         [self.topics.module_state(unit, m) for m in self.modules]:
                self.client.publish(topic, b"", qos=1, retain=True)
        self.client.loop_stop()
        self.client.disconnect()


def start_hub(tmp: Path, broker_port: int, web_port: int) -> subprocess.Popen[bytes]:
    from hub.web.passwords import hash_password

    config = tmp / "hub.yaml"
    config.write_text(f"hub: hub-bench\nbroker: {{host: 127.0.0.1, port: {broker_port}}}\n"
                      f"data_dir: {tmp / 'data'}\nweb: {{host: 127.0.0.1, port: {web_port}}}\nusers:\n"
                      f"  {USER}: {{role: operator, password_hash: '{hash_password(PASSWORD)}'}}\n")
    log = (tmp / "hub.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "labedge", "hub", "run", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "api/openapi.json", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def first_load(browser: Any, url: str, unit: str) -> tuple[int, float, int]:
    """(bytes, ms to the first live point, responses) of a signed-in page's first load."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    page = context.new_page()
    page.goto(url)
    page.fill("#login-user", USER)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#estop-all:not([hidden])")
    state = context.storage_state()  # the session cookie, into a new context with an empty cache
    context.close()
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True,
                                  storage_state=state)
    page = context.new_page()
    sizes: list[int] = []
    page.on("requestfinished", lambda request: sizes.append(request.sizes()["responseBodySize"]
                                                            + request.sizes()["responseHeadersSize"]))
    page.goto(url)
    page.wait_for_function("window.labedgeStats && window.labedgeStats.firstPointAt !== null", timeout=20000)
    first_ms = page.evaluate("window.labedgeStats.firstPointAt")  # ms since the navigation began
    context.close()
    return sum(sizes), float(first_ms), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--modules", type=int, default=5)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"dashboard_bench: {CHROMIUM} is missing (make deps installs the chromium package)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, MosquittoProcess() as broker:
        tmp = Path(folder)
        web_port = free_port()
        url = f"http://127.0.0.1:{web_port}/"
        hub = start_hub(tmp, broker.port, web_port)
        lab = Lab(broker.port, args.units, args.modules)
        try:
            wait_http(url)
            lab.announce()
            lab.start()
            time.sleep(2.0)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                size, first_ms, responses = first_load(browser, url, lab.units[0])
                print(f"first load: {size / 1000:.1f} KB in {responses} responses (target < 500 KB: "
                      f"{'met' if size < 500_000 else 'MISSED'})")
                print(f"opening to first live point: {first_ms:.0f} ms (target < 2000 ms: "
                      f"{'met' if first_ms < 2000 else 'MISSED'})")
                pages = []
                for n in range(args.pages):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
                    page = context.new_page()
                    page.goto(url)
                    page.fill("#login-user", USER)
                    page.fill("#login-password", PASSWORD)
                    page.click("#login-form button[type=submit]")
                    page.wait_for_selector(f"article.unit[data-unit='{lab.units[n % len(lab.units)]}']")
                    page.click(f"article.unit[data-unit='{lab.units[n % len(lab.units)]}']")
                    pages.append(page)
                time.sleep(3.0)
                for page in pages:
                    page.evaluate("window.labedgeStats.delays.length = 0")
                proc = psutil.Process(hub.pid)
                proc.cpu_percent(None)
                sent = lab.sent
                rss = []
                end = time.monotonic() + args.seconds
                while time.monotonic() < end:
                    time.sleep(1.0)
                    rss.append(proc.memory_info().rss)
                cpu = proc.cpu_percent(None)
                rate = (lab.sent - sent) / args.seconds
                delays = sorted(d * 1000 for page in pages
                                for d in page.evaluate("window.labedgeStats.delays"))
                browser.close()
        finally:
            lab.close()
            hub.terminate()
            hub.wait(timeout=20)
    print(f"load: {args.units} units x {args.modules} modules at 1 Hz ({rate:.0f} readings/s into the hub), "
          f"{args.pages} dashboards open, {args.seconds:g} s")
    print(f"hub process: CPU {cpu:.0f} % of one core, memory {max(rss) / 1e6:.0f} MB resident "
          f"(first {rss[0] / 1e6:.0f} MB, last {rss[-1] / 1e6:.0f} MB)")
    if delays:
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(f"reading at the unit -> point in the page: p50 {statistics.median(delays):.0f} ms, "
              f"p99 {p99:.0f} ms, max {delays[-1]:.0f} ms over {len(delays)} points")
    else:
        print("reading at the unit -> point in the page: no point reached a page")


if __name__ == "__main__":
    main()
