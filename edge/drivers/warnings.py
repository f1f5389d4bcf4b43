"""Instrument warnings, reported once per episode with a count of the repeats.

Binary noise on a serial line can make thousands of bad lines a second; a
detached probe makes the same warning every period. Either would fill the
outbox (and push readings out of a full one) if every occurrence were an
event. So a warning code starts an episode: its first occurrence is an event;
repeats are counted, not sent. A summary event with the same code says how
many were suppressed, every `summary_s` while the episode lasts, and once
when it ends. An episode ends with the next good reading, or when the code
has not recurred for `quiet_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.driver import ModuleHost

SUMMARY_S = 60.0
QUIET_S = 30.0


@dataclass
class _Episode:
    started: float
    last: float
    summarized: float  # when the last summary (or the first event) went out
    suppressed: int = 0
    total: int = 1
    last_message: str = ""


class InstrumentWarnings:
    """Rate-limits one module's `warning` events per code (see the module docstring)."""

    def __init__(self, host: ModuleHost, summary_s: float = SUMMARY_S, quiet_s: float = QUIET_S) -> None:
        self.host = host
        self.summary_s = summary_s
        self.quiet_s = quiet_s
        self._episodes: dict[str, _Episode] = {}

    def warn(self, code: str, message: str) -> None:
        now = self.host.clock.monotonic()
        episode = self._episodes.get(code)
        if episode is not None and now - episode.last >= self.quiet_s:
            self._end(code, episode, "it stopped")
            episode = None
        if episode is None:
            self._episodes[code] = _Episode(now, now, now)
            self.host.event("warning", code, message)
            return
        episode.last = now
        episode.suppressed += 1
        episode.total += 1
        episode.last_message = message
        if now - episode.summarized >= self.summary_s:
            self._summary(code, episode, "still going on")
            episode.summarized = now
            episode.suppressed = 0

    def good_reading(self) -> None:
        """A good reading ends every episode."""
        self.end_all("a good reading came")

    def end_all(self, why: str) -> None:
        """End every episode now, each with its summary (also when the measuring loop stops)."""
        episodes, self._episodes = self._episodes, {}
        for code, episode in episodes.items():
            self._end(code, episode, why)

    def tick(self) -> None:
        """End episodes whose code has been quiet for `quiet_s` (called from the measuring loop)."""
        now = self.host.clock.monotonic()
        for code, episode in list(self._episodes.items()):
            if now - episode.last >= self.quiet_s:
                del self._episodes[code]
                self._end(code, episode, "it stopped")

    def suppressed(self, code: str) -> int:
        """Repeats of `code` counted but not yet reported."""
        episode = self._episodes.get(code)
        return 0 if episode is None else episode.suppressed

    def _end(self, code: str, episode: _Episode, why: str) -> None:
        if episode.suppressed:
            self._summary(code, episode, f"ended: {why}")

    def _summary(self, code: str, episode: _Episode, state: str) -> None:
        seconds = episode.last - episode.started
        self.host.event(
            "warning", code,
            f"{episode.suppressed} more {code} warnings not sent one by one "
            f"({episode.total} in {seconds:.1f} s, {state}); the last: {episode.last_message}",
        )
