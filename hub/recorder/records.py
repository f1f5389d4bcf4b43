"""The writer's handling of unit records: rows for the database, lines for the run files (a part of `Writer`).

Runs on the writer thread, inside the transaction of the batch the records came in.
Data messages are the hot path (tens of thousands a second): each module's stream and
the runs that take its unit are looked up once and kept in `_routes` until a run opens
or closes or a transaction rolls back.
"""

from __future__ import annotations

import logging
from typing import Any

from hub.recorder.batch import Batch
from hub.recorder.intake import Bad, DataRecord, EventRecord, StateRecord, clean_text
from hub.recorder.ops import RecorderEvent
from hub.recorder.runfiles import RunFiles, iso
from hub.recorder.seqs import accept
from hub.recorder.store import Store, Stream
from lecis.wire import Birth, to_bytes

log = logging.getLogger("labedge.hub.recorder")
BAD_LOGGED = 10  # per module, then one line per 1000 more


class RecordOps:
    """Unit records into a batch; `Writer` provides the state declared here."""

    store: Store
    streams: dict[tuple[str, str], Stream]
    runs: dict[str, RunFiles]
    births: dict[str, Birth]
    bad_unattributed: int
    _routes: dict[tuple[str, str], tuple[Stream, list[RunFiles]]]

    def _stream(self, unit: str, module: str, batch: Batch) -> Stream:
        stream = self.streams.get((unit, module))
        if stream is None:
            stream = self.store.new_stream(unit, module)
            self.streams[(unit, module)] = stream
        batch.touched[stream.id] = stream
        return stream

    def _record(self, op: Any, batch: Batch, now: float) -> bool:
        """Put a unit record into `batch`; False when `op` is not one."""
        kind = type(op)
        if kind is DataRecord:
            self._data(op, batch, now)
        elif kind is EventRecord:
            self._event(op, batch, now)
        elif kind is StateRecord:
            batch.states[(op.unit, op.module)] = (op.unit, op.module, op.payload, op.received_at)
            if op.birth is not None:
                self.births[op.unit] = op.birth
        elif kind is Bad:
            self._bad(op, batch)
        else:
            return False
        return True

    def _data(self, rec: DataRecord, batch: Batch, now: float) -> None:
        key = (rec.unit, rec.module)
        route = self._routes.get(key)
        if route is None:
            stream = self._stream(rec.unit, rec.module, batch)
            route = self._routes[key] = (stream, [r for r in self.runs.values() if r.accepts(rec.unit)])
        stream, runs = route
        batch.touched[stream.id] = stream
        seq = rec.seq
        last = stream.last_seq
        if last is not None and seq == last + 1:  # the common case, counted here
            stream.last_seq = seq
            stream.received += 1
            stream.stored += 1
        else:
            verdict = accept(stream, seq, batch, self.store.known, now)
            if verdict is False:
                return
            if verdict is not True:
                self._recorder_event(batch, verdict)
        points = rec.points
        batch.add_message((stream.id, seq, "d", points[0].ts, rec.hist, rec.received_at))
        series, sid, readings = self.store.series, stream.id, batch.readings
        for point in points:
            ts = point.ts
            for name, value in point.values.items():
                readings.append((series(sid, name), ts, seq, value))
            for run in runs:
                run.reading(rec.unit, rec.module, seq, point)

    def _event(self, rec: EventRecord, batch: Batch, now: float) -> None:
        stream = self._stream(rec.unit, rec.module, batch)
        verdict = accept(stream, rec.seq, batch, self.store.known, now)
        if verdict is False:
            return
        if verdict is not True:
            self._recorder_event(batch, verdict)
        batch.add_message((stream.id, rec.seq, "e", rec.ts, rec.hist, rec.received_at))
        batch.events.append(
            (
                rec.unit,
                rec.module,
                rec.seq,
                rec.ts,
                rec.ts_text,
                rec.level,
                rec.code,
                rec.message,
                "unit",
                rec.hist,
                rec.received_at,
                None,
                None,
            )
        )
        line = {
            "ts": rec.ts_text,
            "ts_epoch": rec.ts,
            "source": "unit",
            "unit": rec.unit,
            "module": rec.module,
            "seq": rec.seq,
            "hist": rec.hist,
            "level": rec.level,
            "code": rec.code,
            "message": rec.message,
        }
        for run in self.runs.values():
            if run.accepts(rec.unit):
                run.event(line)

    def _bad(self, rec: Bad, batch: Batch) -> None:
        if rec.unit is None or rec.module is None:
            self.bad_unattributed += 1
            count = self.bad_unattributed
            where = rec.unit or "?"
        else:
            stream = self._stream(rec.unit, rec.module, batch)
            stream.received += 1
            stream.bad += 1
            stream.last_problem = rec.problem
            count = stream.bad
            where = f"{rec.unit}/{rec.module}"
        if count <= BAD_LOGGED or count % 1000 == 0:
            log.warning(
                "recorder refused a %s message from %s (%d so far): %s", rec.kind, where, count, rec.problem
            )

    def _recorder_event(self, batch: Batch, event: RecorderEvent, notify: bool = True) -> None:
        ts_utc = iso(event.ts) or ""
        data = to_bytes(dict(event.data)).decode("utf-8") if event.data else None
        batch.events.append(
            (
                event.unit,
                event.module,
                None,
                event.ts,
                ts_utc,
                event.level,
                event.code,
                clean_text(event.message),
                "recorder",
                False,
                event.ts,
                None,
                data,
            )
        )
        line = {
            "ts": ts_utc,
            "ts_epoch": event.ts,
            "source": "recorder",
            "unit": event.unit,
            "module": event.module,
            "level": event.level,
            "code": event.code,
            "message": event.message,
            "data": dict(event.data),
        }
        for run in self.runs.values():
            if event.unit is None or run.accepts(event.unit):
                run.event(line)
        if notify:
            batch.notify.append(event)
