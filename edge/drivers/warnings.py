"""Instrument warnings, with lasting conditions reported once per episode.

A detached probe or a value stuck out of range would otherwise fill the event
log every period; they are reported when they start and again only after a
good reading has ended them.
"""

from __future__ import annotations

from edge.driver import ModuleHost


class InstrumentWarnings:
    def __init__(self, host: ModuleHost, lasting: frozenset[str]) -> None:
        self.host = host
        self.lasting = lasting
        self._reported: set[str] = set()

    def warn(self, code: str, message: str) -> None:
        if code in self.lasting:
            if code in self._reported:
                return
            self._reported.add(code)
        self.host.event("warning", code, message)

    def good_reading(self) -> None:
        """A good reading ends every lasting condition."""
        self._reported.clear()
