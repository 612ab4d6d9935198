"""Deadlines for the loop's phases, from their own recent durations.

A phase (rollout, learning, ...) that has run before gets `factor` × the median of its recent durations, and
never less than `floor_seconds`; one that has not (compilation, a first vLLM warm-up) gets `first_seconds`.
A phase silent past its deadline is a stall: the driver reports who holds it and their Python stacks, then
retries it once (rollout) or stops (learning)."""
from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass, field


class PhaseStalled(RuntimeError):
    """A phase made no progress within its deadline; the message carries the report (holder, stacks)."""


@dataclass
class Watchdog:
    factor: float = 5.0
    floor_seconds: float = 60.0
    first_seconds: float = 900.0
    recent: dict[str, collections.deque] = field(default_factory=dict)

    def deadline(self, phase: str) -> float:
        seen = self.recent.get(phase)
        if not seen:
            return self.first_seconds
        return max(self.floor_seconds, self.factor * statistics.median(seen))

    def record(self, phase: str, seconds: float) -> None:
        self.recent.setdefault(phase, collections.deque(maxlen=20)).append(seconds)
