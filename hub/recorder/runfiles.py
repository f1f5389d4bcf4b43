"""The plain files of one experiment run or session (docs/recorder.md describes the layout).

    RUN_DIR/run.json                       metadata, rewritten whole (tmp + rename)
    RUN_DIR/schema.json                    modules, readings, units, ranges (from `$birth`)
    RUN_DIR/units/UNIT/MODULE.HOUR.csv     ts_utc, elapsed_s, seq, one column per value
    RUN_DIR/derived/NAME.HOUR.csv          ts_utc, elapsed_s, value
    RUN_DIR/events.HOUR.jsonl              unit events, readings lost, controller logs
    RUN_DIR/commands.HOUR.jsonl            every command the controller sent and its outcome
    RUN_DIR/versions/NNNN.yaml (+ .json)   every script version, with author, time and diff

Lines are buffered by the writer thread and written once per batch, before
the database commits that batch; `rollback` cuts the files back when the
commit fails. After a crash the database may therefore lack lines the files
have: on reopening, the last seq in the files of each module is its `floor`,
and a message at or below it is stored in the database only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.recorder.chunks import (
    ChunkStream,
    FileOps,
    Repair,
    chunks_of,
    csv_line,
    first_line,
    last_line,
    repair_torn,
)
from hub.recorder.intake import Point
from lecis.clock import iso_ts
from lecis.wire import Birth, to_bytes

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CSV_FIXED = ["ts_utc", "elapsed_s", "seq"]
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def iso(epoch: float | None) -> str | None:
    from datetime import UTC, datetime

    return None if epoch is None else iso_ts(datetime.fromtimestamp(epoch, UTC))


def label(name: str, unit: str) -> str:
    """`ph`, `temp [°C]`: the unit in brackets unless it only repeats the name."""
    return name if not unit or unit.lower() == name.lower() else f"{name} [{unit}]"


def write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(to_bytes(value) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class RunFiles:
    """The folder of one run (`kind` "run") or session (`kind` "session")."""

    def __init__(
        self,
        root: Path,
        run_id: str,
        kind: str,
        units: frozenset[str] | None,
        started_at: float,
        births: Mapping[str, Birth],
        meta: Mapping[str, Any],
        ops: FileOps,
        on_repair: Repair | None = None,
    ) -> None:
        self.root, self.run_id, self.kind, self.units = root, run_id, kind, units
        self.started_at, self.births, self.meta = started_at, dict(births), dict(meta)
        self.ops, self.on_repair = ops, on_repair
        self.ended_at: float | None = None
        self.versions: list[dict[str, Any]] = []
        self._csv: dict[tuple[str, str], ChunkStream] = {}
        self._columns: dict[tuple[str, str], list[str]] = {}
        self._derived: dict[str, ChunkStream] = {}
        self.events = ChunkStream(root, "events", "jsonl", ops, None, on_repair)
        self.commands = ChunkStream(root, "commands", "jsonl", ops, None, on_repair)
        self.floor: dict[tuple[str, str], int] = {}
        self._touched: set[ChunkStream] = set()

    # -- reopening after a restart --------------------------------------------------------------

    def recover(self) -> None:
        """Repair torn last lines and learn, per module, the last seq the files already hold."""
        units_dir = self.root / "units"
        if units_dir.is_dir():
            for unit_dir in sorted(units_dir.iterdir()):
                names = {p.name.split(".", 1)[0] for p in unit_dir.glob("*.csv")}
                for module in names:
                    found = chunks_of(unit_dir, module, "csv")
                    if not found:
                        continue
                    path = found[-1][2]
                    repair_torn(path, self.ops, self.on_repair)
                    line = last_line(path)
                    fields = line.decode("utf-8", "replace").split(",") if line else []
                    if len(fields) > 2 and fields[2].isdigit():
                        self._raise_floor((unit_dir.name, module), int(fields[2]))
                    header = first_line(path)
                    if header:
                        self._columns[(unit_dir.name, module)] = [
                            h.split(" [", 1)[0] for h in header.rstrip("\n").split(",")[3:]
                        ]
        found = chunks_of(self.root, "events", "jsonl")
        if found:
            repair_torn(found[-1][2], self.ops, self.on_repair)
            for raw in found[-1][2].read_bytes().splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if (
                    isinstance(line, dict)
                    and isinstance(line.get("seq"), int)
                    and line.get("source") == "unit"
                ):
                    self._raise_floor((str(line.get("unit")), str(line.get("module"))), line["seq"])
        for name in ("commands",):
            found = chunks_of(self.root, name, "jsonl")
            if found:
                repair_torn(found[-1][2], self.ops, self.on_repair)
        self.versions = [json.loads(p.read_text()) for p in sorted((self.root / "versions").glob("*.json"))]

    def _raise_floor(self, key: tuple[str, str], seq: int) -> None:
        self.floor[key] = max(seq, self.floor.get(key, -1))

    # -- what goes in -----------------------------------------------------------------------------

    def accepts(self, unit: str) -> bool:
        return self.units is None or unit in self.units

    def reading(self, unit: str, module: str, seq: int, point: Point) -> None:
        key = (unit, module)
        if seq <= self.floor.get(key, -1):
            return  # written before a crash that came ahead of the database's commit
        stream = self._csv.get(key) or self._open_csv(key)
        columns = self._columns[key]
        values = point.values
        if len(columns) == 1 and len(values) == 1 and columns[0] in values:  # the common case, quickly
            stream.add(f"{point.ts_text},{point.ts - self.started_at:.3f},{seq},{values[columns[0]]!r}\n")
        else:
            new = [n for n in values if n not in columns]
            if new:
                columns.extend(new)
                stream.set_header(self._header(key))
            cells = [point.ts_text, f"{point.ts - self.started_at:.3f}", str(seq)]
            cells.extend("" if (v := values.get(n)) is None else repr(v) for n in columns)
            stream.add(",".join(cells) + "\n")
        self._touched.add(stream)

    def event(self, line: dict[str, Any]) -> None:
        seq, key = line.get("seq"), (str(line.get("unit")), str(line.get("module")))
        if line.get("source") == "unit" and isinstance(seq, int) and seq <= self.floor.get(key, -1):
            return
        ts = line.get("ts_epoch")
        out = {k: v for k, v in line.items() if k != "ts_epoch"}
        if isinstance(ts, float):
            out["elapsed_s"] = round(ts - self.started_at, 3)
        self.events.add(to_bytes(out).decode("utf-8") + "\n")
        self._touched.add(self.events)

    def command(self, line: dict[str, Any]) -> None:
        self.commands.add(to_bytes(line).decode("utf-8") + "\n")
        self._touched.add(self.commands)

    def derived(self, name: str, ts: float, value: float) -> None:
        safe = _SAFE.sub("_", name)[:64] or "signal"
        stream = self._derived.get(safe)
        if stream is None:
            stream = ChunkStream(
                self.root / "derived",
                safe,
                "csv",
                self.ops,
                csv_line(["ts_utc", "elapsed_s", "value"]),
                self.on_repair,
            )
            self._derived[safe] = stream
        stream.add(f"{iso(ts)},{ts - self.started_at:.3f},{value!r}\n")
        self._touched.add(stream)

    def version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        folder = self.root / "versions"
        folder.mkdir(parents=True, exist_ok=True)
        info = {
            "version": version,
            "author": author,
            "ts": iso(ts),
            "diff": diff,
            "file": f"{version:04d}.yaml",
        }
        tmp = folder / f"{version:04d}.yaml.tmp"
        tmp.write_bytes(text.encode("utf-8", "backslashreplace"))
        tmp.replace(folder / f"{version:04d}.yaml")
        write_json_atomic(folder / f"{version:04d}.json", info)
        self.versions = [v for v in self.versions if v.get("version") != version] + [info]

    # -- writing ----------------------------------------------------------------------------------

    def write(self, now: float) -> None:
        for stream in self._touched:
            stream.write(now)

    def commit(self) -> None:
        for stream in self._touched:
            stream.commit()
        self._touched.clear()

    def rollback(self) -> None:
        """Cut the files back to before this batch and drop its lines (the batch is tried again whole)."""
        for stream in self._touched:
            stream.rollback()
            stream.commit()
        self._touched.clear()

    def sync(self) -> None:
        for stream in self._streams():
            stream.sync()

    def sync_later(self) -> list[int]:
        """Descriptors (duplicates, the caller's to close) of the files written since the last sync.

        A file whose descriptor cannot be duplicated (none left) is synced here and now."""
        fds: list[int] = []
        try:
            for stream in self._streams():
                try:
                    fd = stream.sync_later()
                except OSError:
                    stream.sync()
                    continue
                if fd is not None:
                    fds.append(fd)
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def close(self) -> None:
        for stream in self._streams():
            stream.close()

    def _streams(self) -> list[ChunkStream]:
        return [*self._csv.values(), *self._derived.values(), self.events, self.commands]

    def _open_csv(self, key: tuple[str, str]) -> ChunkStream:
        unit, module = key
        declared = self._declared(unit, module)
        columns = self._columns.get(key)
        if columns is None or not set(declared) <= set(columns):
            columns = list(declared)
        self._columns[key] = columns
        stream = ChunkStream(
            self.root / "units" / unit, module, "csv", self.ops, self._header(key), self.on_repair
        )
        self._csv[key] = stream
        return stream

    def _declared(self, unit: str, module: str) -> list[str]:
        birth = self.births.get(unit)
        spec = None if birth is None else birth.modules.get(module)
        return [] if spec is None else [r.name for r in spec.readings]

    def _header(self, key: tuple[str, str]) -> str:
        unit, module = key
        birth = self.births.get(unit)
        spec = None if birth is None else birth.modules.get(module)
        units = {} if spec is None else {r.name: r.unit for r in spec.readings}
        return csv_line(CSV_FIXED + [label(n, units.get(n, "")) for n in self._columns[key]])

    # -- metadata ---------------------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        modules: dict[str, Any] = {}
        for unit, birth in sorted(self.births.items()):
            if not self.accepts(unit):
                continue
            for name, spec in sorted(birth.modules.items()):
                key = (unit, name)
                columns = self._columns.get(key) or [r.name for r in spec.readings]
                ranges = {r.name: r for r in spec.readings}
                modules[f"{unit}/{name}"] = {
                    "unit": unit,
                    "module": name,
                    "kind": spec.kind,
                    "driver": spec.driver,
                    "csv": f"units/{unit}/{name}.HOUR.csv",
                    "columns": CSV_FIXED + [label(c, ranges[c].unit if c in ranges else "") for c in columns],
                    "readings": [
                        {"name": r.name, "unit": r.unit, "range": [r.minimum, r.maximum]}
                        for r in spec.readings
                    ],
                }
        return {
            "modules": modules,
            "derived": sorted(self._derived),
            "csv_fixed_columns": {
                "ts_utc": "the unit's UTC timestamp of the reading",
                "elapsed_s": "seconds since the run started",
                "seq": "the module's message sequence number",
            },
        }

    def write_schema(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / "schema.json", self.schema())

    def write_meta(self, counts: Mapping[str, Mapping[str, int]], software_version: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {
            "id": self.run_id,
            "kind": self.kind,
            "experiment": self.meta.get("experiment"),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "units": sorted(self.units) if self.units is not None else None,
            "software_version": software_version,
            "readings_lost": {k: v["readings_lost"] for k, v in sorted(counts.items())},
            "duplicates": {k: v["duplicates"] for k, v in sorted(counts.items())},
            "stored": {k: v["stored"] for k, v in sorted(counts.items())},
            "versions": sorted(self.versions, key=lambda v: int(v.get("version", 0))),
            "layout": 1,
            "meta": self.meta,
        }
        write_json_atomic(self.root / "run.json", info)
