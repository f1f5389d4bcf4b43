"""Seeded misbehaviour for the simulators: garbage, cut lines, silences, unplugging.

`FaultPlan` is the configuration (from `--faults garbage,partial --fault-rate
0.05 --seed 3`); `FaultInjector` rolls the dice for one simulator. The same
seed and the same traffic give the same faults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lecis.errors import SettingInvalid

FAULT_KINDS = ("garbage", "partial", "silence", "disconnect")
# Line noise, never printable ASCII nor a line end: a reader can tell it from a real answer.
NOISE_BYTES = bytes(b for b in range(1, 256) if (b < 0x20 and b not in (0x0A, 0x0D)) or b >= 0x80)


def parse_fault_kinds(text: str) -> frozenset[str]:
    """"garbage,partial" -> {"garbage", "partial"}; SettingInvalid (a ValueError) naming an unknown kind."""
    kinds = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(kinds - set(FAULT_KINDS))
    if unknown:
        raise SettingInvalid(f"unknown fault {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}")
    return frozenset(kinds)


@dataclass(frozen=True)
class FaultPlan:
    """Which faults, how often (`rate` per line or command) and for how long (seconds of clock time)."""

    kinds: frozenset[str] = frozenset()
    rate: float = 0.05
    seed: int = 0
    silence_s: float = 3.0
    partial_late_s: float = 1.0
    disconnect_every_s: float = 30.0
    disconnect_for_s: float = 3.0

    def __post_init__(self) -> None:
        parse_fault_kinds(",".join(self.kinds))  # raises on an unknown kind
        if not 0.0 <= self.rate <= 1.0:
            raise SettingInvalid(f"fault rate must be between 0 and 1, got {self.rate}")
        for name in ("silence_s", "partial_late_s", "disconnect_every_s", "disconnect_for_s"):
            if not getattr(self, name) > 0:
                raise SettingInvalid(f"fault timing {name} must be above 0, got {getattr(self, name)}")

    @classmethod
    def parse(cls, text: str, rate: float = 0.05, seed: int = 0, **timings: float) -> FaultPlan:
        """Build a plan from the `--faults` list and the other options."""
        return cls(parse_fault_kinds(text), rate=rate, seed=seed, **timings)

    def __contains__(self, kind: object) -> bool:
        return kind in self.kinds


class FaultInjector:
    """Decides, line by line and command by command, what goes wrong. `injected` logs what did."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self.injected: list[str] = []

    def _roll(self, kind: str) -> bool:
        # Always draw, so enabling one fault does not reshuffle when the others strike.
        return self._rng.random() < self.plan.rate and kind in self.plan

    def outgoing(self, line: str) -> list[tuple[float, bytes]]:
        """The bytes to send for `line` (its `\\r` added), each with a delay before it."""
        data = (line + "\r").encode("ascii")
        chunks: list[tuple[float, bytes]] = []
        if self._roll("garbage"):
            noise = bytes(self._rng.choice(NOISE_BYTES) for _ in range(self._rng.randint(1, 8)))
            on_own_line = self._rng.random() < 0.5
            chunks.append((0.0, noise + b"\r" if on_own_line else noise))
            self.injected.append(f"garbage before {line!r}")
        if self._roll("partial") and len(data) > 1:
            cut = self._rng.randint(1, len(data) - 1)
            chunks.append((0.0, data[:cut]))
            if self._rng.random() < 0.5:
                chunks.append((self.plan.partial_late_s, data[cut:]))
                self.injected.append(f"partial {line!r}, rest late")
            else:
                self.injected.append(f"partial {line!r}, rest lost")
            return chunks
        chunks.append((0.0, data))
        return chunks

    def silence(self) -> float:
        """Seconds to leave commands unanswered from now on (0.0: answer this one)."""
        if self._roll("silence"):
            self.injected.append(f"silence for {self.plan.silence_s:g} s")
            return self.plan.silence_s
        return 0.0

    def next_disconnect(self) -> tuple[float, float] | None:
        """(seconds until the next unplugging, seconds it stays out), or None without that fault."""
        if "disconnect" not in self.plan:
            return None
        jitter = self._rng.uniform(0.8, 1.2)  # so several simulators do not drop out in step
        return self.plan.disconnect_every_s * jitter, self.plan.disconnect_for_s
