"""Instrument warnings come once per episode with a count, whatever floods the line.

The rule on its own against virtual time, then through a running unit over
MQTT: a line instrument whose serial line carries binary noise for a few
seconds gives a handful of `bad_data` events, not thousands, and the last
one says how many bad lines it stood for.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from edge.driver import DriverResources
from edge.drivers.warnings import InstrumentWarnings
from edge.unit import Unit
from lecis.config_loader import load_unit_config
from provisioning.broker import MosquittoProcess
from sim.line_device import LineInstrumentSimulator
from tests.edge.fake_host import FakeHost
from tests.edge.gpio_fixtures import ManualClock
from tests.rig import probe

SUMMARY = re.compile(r"^(\d+) more (\w+) warnings not sent one by one \((\d+) in ")


def warnings_on(clock: ManualClock) -> tuple[FakeHost, InstrumentWarnings]:
    host = FakeHost(clock)
    return host, InstrumentWarnings(host, summary_s=60, quiet_s=30)


def counted(message: str) -> tuple[int, int]:
    match = SUMMARY.match(message)
    assert match, message
    return int(match.group(1)), int(match.group(3))


async def test_a_flood_is_one_event_then_a_summary_with_the_count() -> None:
    clock = ManualClock()
    host, warnings = warnings_on(clock)
    for i in range(18_600):
        warnings.warn("bad_data", f"line {i} is noise")
    assert host.codes() == ["bad_data"] and host.events[0][2] == "line 0 is noise"
    assert warnings.suppressed("bad_data") == 18_599
    warnings.good_reading()
    assert host.codes() == ["bad_data", "bad_data"]
    assert counted(host.events[1][2]) == (18_599, 18_600)
    assert "line 18599 is noise" in host.events[1][2] and "ended: a good reading came" in host.events[1][2]


async def test_a_long_episode_is_summarized_every_summary_s() -> None:
    clock = ManualClock()
    host, warnings = warnings_on(clock)
    for _ in range(300):  # one bad line a second for five minutes
        warnings.warn("bad_data", "noise")
        await clock.advance(1.0)
    summaries = [counted(message) for _, _, message in host.events[1:]]
    assert len(host.events) == 1 + 4  # the first, then one a minute
    assert [suppressed for suppressed, _ in summaries] == [60, 60, 60, 60]
    assert [total for _, total in summaries] == [61, 121, 181, 241]


async def test_an_episode_ends_when_its_code_stays_quiet() -> None:
    clock = ManualClock()
    host, warnings = warnings_on(clock)
    warnings.warn("timeout", "first")
    warnings.warn("timeout", "second")
    warnings.warn("out_of_range", "other code, own episode")
    await clock.advance(29.0)
    warnings.tick()
    assert host.codes() == ["timeout", "out_of_range"]
    await clock.advance(1.0)
    warnings.tick()
    assert host.codes() == ["timeout", "out_of_range", "timeout"]  # out_of_range had no repeats to tell
    assert counted(host.events[2][2]) == (1, 2) and "it stopped" in host.events[2][2]
    warnings.warn("timeout", "a new episode")
    assert host.events[-1] == ("warning", "timeout", "a new episode")


async def test_a_single_warning_has_no_summary() -> None:
    host, warnings = warnings_on(ManualClock())
    warnings.warn("bad_data", "once")
    warnings.good_reading()
    warnings.end_all("stopped")
    assert host.codes() == ["bad_data"]


LINE_DCD = """module: turb1
driver: line
port: {port}
period_s: 0.05
timeout_s: 1
query: "MEAS?"
pattern: '^T=(?P<turbidity>[0-9.]+) NTU'
readings:
  turbidity: {{unit: NTU, min: 0, max: 4000}}
"""
NOISE_S = 3.0


async def test_binary_noise_through_a_unit_gives_a_bounded_number_of_events_with_the_count(
        mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with LineInstrumentSimulator(tmp_path / "turb1") as sim:
        (tmp_path / "dcd").mkdir()
        (tmp_path / "dcd" / "turb1.yaml").write_text(LINE_DCD.format(port=sim.port))
        (tmp_path / "unit.yaml").write_text(
            f"unit: noisy\nbroker: {{host: 127.0.0.1, port: {mosquitto.port}, keepalive_s: 2}}\n"
            f"data_dir: {tmp_path / 'data'}\nmodules: [dcd/turb1.yaml]\n")
        unit = Unit(load_unit_config(tmp_path / "unit.yaml"), resources=DriverResources())
        async with probe("127.0.0.1", mosquitto.port, pattern="lab/noisy/turb1/#") as seen:
            task = asyncio.create_task(unit.run())
            try:
                data, events = "lab/noisy/turb1/data", "lab/noisy/turb1/event"
                await seen.wait_for(lambda: len(seen.on(data)) >= 2, 15, "readings before the noise")
                sim.noise_on()
                started = time.monotonic()
                await seen.wait_for(lambda: seen.on(events), 10, "the first bad_data event")
                await asyncio.sleep(max(0.0, NOISE_S - (time.monotonic() - started)))
                during = len(seen.on(data))
                await sim.noise_off()
                readings = len(seen.on(data))
                await seen.wait_for(lambda: len(seen.on(data)) >= readings + 3, 15,
                                    "readings after the noise")
                await seen.wait_for(
                    lambda: any(SUMMARY.match(e["message"]) for e in seen.on(events)), 10, "the summary")
            finally:
                unit.stop()
                await asyncio.wait_for(task, 15)
    noise_events = [e for e in seen.on(events) if e["code"] == "bad_data"]
    totals = [counted(e["message"])[1] for e in noise_events if SUMMARY.match(e["message"])]
    assert sim.noise_lines > 2_000, "the simulator flooded the line"
    assert sum(totals) > 1_000, (totals, sim.noise_lines)  # the summaries count what was not sent
    # An episode ends at a good reading, so at most two events per reading that got through the noise.
    assert len(noise_events) <= 2 * (during + 1) + 2, (len(noise_events), during)
    assert len(noise_events) * 50 < sim.noise_lines, [e["message"][:60] for e in noise_events]
    assert seen.violations == []


def test_a_warning_quoting_a_lone_surrogate_is_stored_and_sent_intact(tmp_path: Path) -> None:
    from edge.outbox import Outbox
    from lecis.wire import Event, decode

    text = "the instrument sent '\udcff\ud800' unasked; ignored"
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.append("turb1", "event", {"ts": "2026-11-21T15:04:05.123Z", "level": "warning",
                                         "code": "bad_data", "message": text})
        assert outbox.flush()
        (stored,) = outbox.pending(0, 10)
    assert decode(Event, stored.payload(hist=False)).message == text
