"""The hub's recorder: every unit message into SQLite and per-run files (docs/recorder.md)."""

from hub.recorder.errors import RecorderBusy, RecorderClosed, RecorderError, RunIdInvalid
from hub.recorder.ops import RecorderEvent
from hub.recorder.query import Bucket
from hub.recorder.recorder import Recorder, RunSink

__all__ = [
    "Bucket",
    "Recorder",
    "RecorderBusy",
    "RecorderClosed",
    "RecorderError",
    "RecorderEvent",
    "RunIdInvalid",
    "RunSink",
]
