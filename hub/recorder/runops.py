"""The writer's handling of runs and sessions, and of the controller's effects (a part of `Writer`).

Runs on the writer thread, inside the transaction of the batch the op came in.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hub.controller.effects import CommandEffect, DerivedEffect, LogEffect, SessionEffect
from hub.recorder.batch import Batch
from hub.recorder.chunks import FileOps
from hub.recorder.intake import clean_text
from hub.recorder.ops import CloseRun, EffectOp, OpenRun, RecorderEvent, VersionOp
from hub.recorder.runfiles import RunFiles, iso
from hub.recorder.store import DERIVED_MODULE, DERIVED_UNIT, Store, Stream
from lecis.clock import Clock
from lecis.wire import Birth, to_bytes

log = logging.getLogger("labedge.hub.recorder")


class RunOps:
    """Run and effect ops; `Writer` provides the state and the methods declared here."""

    data_dir: Path
    clock: Clock
    files: FileOps
    software_version: str
    store: Store
    streams: dict[tuple[str, str], Stream]
    runs: dict[str, RunFiles]
    births: dict[str, Birth]
    _deferred: list[RecorderEvent]

    def _emit(self, event: RecorderEvent) -> None:
        raise NotImplementedError

    def _stream(self, unit: str, module: str, batch: Batch) -> Stream:
        raise NotImplementedError

    # -- runs and the controller's effects --------------------------------------------------------

    def _open_files(
        self,
        run_id: str,
        kind: str,
        units: frozenset[str] | None,
        meta: dict[str, Any],
        births: dict[str, Birth],
        started_at: float,
    ) -> RunFiles:
        root = self.data_dir / ("runs" if kind == "run" else "sessions") / run_id
        run = RunFiles(root, run_id, kind, units, started_at, births, meta, self.files, self._repaired)
        if root.exists():
            run.recover()
        self.runs[run_id] = run
        return run

    def _repaired(self, path: Path, cut: int) -> None:
        message = (
            f"{path}: cut {cut} bytes of a line left incomplete by a crash; the lines before it are kept"
        )
        log.warning("%s", message)
        event = RecorderEvent(
            "warning",
            "torn_line_repaired",
            message,
            self.clock.now().timestamp(),
            data={"path": str(path), "bytes": cut},
        )
        self._deferred.append(event)
        self._emit(event)

    def _run_op(self, op: OpenRun | CloseRun | EffectOp | VersionOp, batch: Batch, now: float) -> None:
        db = self.store.db
        if isinstance(op, OpenRun):
            births = dict(op.births)
            for unit in op.units or ():
                if unit not in births and unit in self.births:
                    births[unit] = self.births[unit]
            run = self.runs.get(op.run_id)
            if run is None:
                run = self._open_files(op.run_id, op.kind, op.units, dict(op.meta), births, op.started_at)
                baseline = {f"{k[0]}/{k[1]}": s.counts() for k, s in self.streams.items()}
                db.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,NULL,?)",
                    (
                        op.run_id,
                        op.kind,
                        None if op.units is None else json.dumps(sorted(op.units)),
                        to_bytes(dict(op.meta)).decode(),
                        json.dumps({u: b.to_json() for u, b in births.items()}),
                        op.started_at,
                        json.dumps(baseline),
                    ),
                )
            else:
                run.births.update(births)
                run.meta.update(op.meta)
            run.write_schema()
            run.write_meta(self._run_counts(op.run_id, run), self.software_version)
            return
        run = self.runs.get(op.run_id)
        if run is None:
            log.warning("recorder: no open run or session %r for %s", op.run_id, type(op).__name__)
            return
        if isinstance(op, CloseRun):
            run.ended_at = op.ended_at
            run.write(now)
            run.commit()
            run.write_schema()
            run.write_meta(self._run_counts(op.run_id, run), self.software_version)
            db.execute("UPDATE runs SET ended_at=? WHERE id=?", (op.ended_at, op.run_id))
            run.close()
            del self.runs[op.run_id]
        elif isinstance(op, VersionOp):
            run.version(op.version, op.text, op.author, op.ts, op.diff)
            self._controller_event(
                batch,
                run,
                op.ts,
                "info",
                "script_version",
                f"script version {op.version} by {op.author} is running",
                {},
            )
        else:
            self._effect(op, run, batch)

    def _effect(self, op: EffectOp, run: RunFiles, batch: Batch) -> None:
        effect = op.effect
        if isinstance(effect, CommandEffect):
            outcome = (
                None
                if op.outcome is None
                else {
                    "status": op.outcome.status,
                    "error": None if op.outcome.error is None else dict(op.outcome.error),
                    "result": None if op.outcome.result is None else dict(op.outcome.result),
                }
            )
            line = {
                "ts": iso(op.ts),
                "elapsed_s": round(op.ts - run.started_at, 3),
                "effect_id": effect.effect_id,
                "unit": effect.unit,
                "module": effect.module,
                "cmd": effect.cmd,
                "args": dict(effect.args),
                "origin": effect.origin,
                "outcome": outcome,
            }
            run.command(line)
            batch.commands.append(
                (
                    run.run_id,
                    op.ts,
                    effect.effect_id,
                    effect.unit,
                    effect.module,
                    effect.cmd,
                    to_bytes(line).decode("utf-8"),
                )
            )
        elif isinstance(effect, LogEffect):
            self._controller_event(
                batch,
                run,
                op.ts,
                effect.level,
                effect.code,
                effect.message,
                {"origin": effect.origin, **effect.data},
            )
        elif isinstance(effect, SessionEffect):
            self._controller_event(
                batch,
                run,
                op.ts,
                "info",
                f"session_{effect.action}",
                f"session {effect.action} on {effect.unit}" + (f" ({effect.name})" if effect.name else ""),
                {"origin": effect.origin, "unit": effect.unit, "name": effect.name},
            )
        elif isinstance(effect, DerivedEffect):
            stream = self._stream(DERIVED_UNIT, DERIVED_MODULE, batch)
            batch.readings.append((self.store.series(stream.id, effect.name), effect.ts, 0, effect.value))
            run.derived(effect.name, effect.ts, effect.value)

    def _controller_event(
        self,
        batch: Batch,
        run: RunFiles,
        ts: float,
        level: str,
        code: str,
        message: str,
        data: dict[str, Any],
    ) -> None:
        ts_utc = iso(ts) or ""
        text = to_bytes(data).decode("utf-8") if data else None
        batch.events.append(
            (
                None,
                None,
                None,
                ts,
                ts_utc,
                level,
                clean_text(code),
                clean_text(message),
                "controller",
                False,
                ts,
                run.run_id,
                text,
            )
        )
        run.event(
            {
                "ts": ts_utc,
                "ts_epoch": ts,
                "source": "controller",
                "level": level,
                "code": code,
                "message": message,
                "data": data,
            }
        )

    def _run_counts(self, run_id: str, run: RunFiles) -> dict[str, dict[str, int]]:
        row = self.store.db.execute("SELECT baseline FROM runs WHERE id=?", (run_id,)).fetchone()
        baseline: dict[str, dict[str, int]] = json.loads(row[0]) if row else {}
        out = {}
        for (unit, module), stream in self.streams.items():
            if unit == DERIVED_UNIT or not run.accepts(unit):
                continue
            key = f"{unit}/{module}"
            base = baseline.get(key, {})
            out[key] = {k: v - base.get(k, 0) for k, v in stream.counts().items()}
        return out

