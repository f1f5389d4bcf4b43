"""Sequence numbers per module: a repeat is a duplicate, a jump a gap, a late seq fills its gap."""

from __future__ import annotations

from collections.abc import Callable

from hub.recorder.batch import Batch
from hub.recorder.ops import RecorderEvent
from hub.recorder.store import Stream


def accept(
    stream: Stream, seq: int, batch: Batch, known: Callable[[int, int], bool], now: float
) -> RecorderEvent | bool:
    """Count one message of `stream`: False for a duplicate, else True or the gap's event.

    `known(stream_id, seq)` says whether the database already holds that seq. The caller
    stores the message (with `batch.add_message`) unless this returned False.
    """
    stream.received += 1
    last = stream.last_seq
    if last is None or seq > last:
        stream.last_seq = seq
        stream.stored += 1
        if last is None or seq == last + 1:
            return True
        lost = seq - last - 1
        stream.gaps += 1
        stream.readings_lost += lost
        message = (
            f"{lost} message{'s' if lost > 1 else ''} of {stream.unit}/{stream.module} never "
            f"arrived (seq {last + 1}" + (f" to {seq - 1})" if lost > 1 else ")")
        )
        return RecorderEvent(
            "warning",
            "readings_lost",
            message,
            now,
            stream.unit,
            stream.module,
            {"first_seq": last + 1, "last_seq": seq - 1, "lost": lost, "total_lost": stream.readings_lost},
        )
    if batch.stored_here(stream.id, seq) or known(stream.id, seq):
        stream.duplicates += 1
        return False
    stream.recovered += 1
    stream.readings_lost = max(0, stream.readings_lost - 1)
    stream.stored += 1
    return True
