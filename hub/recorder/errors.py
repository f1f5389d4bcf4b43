"""The recorder's errors: what went wrong and what to do about it."""

from __future__ import annotations

from lecis.errors import LabedgeError


class RecorderError(LabedgeError):
    """Root of the recorder's errors."""


class RecorderBusy(RecorderError):
    """Another process records into the same data folder."""


class RecorderClosed(RecorderError):
    """The recorder is not open (use it as `async with Recorder(...)`), or its writer has stopped."""


class RunIdInvalid(RecorderError, ValueError):
    """A run or session id that cannot name a folder."""


class RunUnknown(RecorderError, KeyError):
    """No open run or session has this id."""
