"""Deadlines for the loop's phases, from their own recent durations.

A phase (rollout, learning, ...) that has run before gets `factor` × the median of its recent durations, and
never less than `floor_seconds`; one that has not (compilation, a first vLLM warm-up) gets `first_seconds`.
A phase silent past its deadline is a stall: the driver reports who holds it and their Python stacks, then
retries it once (rollout) or stops (learning)."""
from __future__ import annotations

import collections
import statistics
import time
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


class BusyClock:
    """When the accelerator-bound phases (sampling, learning) run, to tell how much of a step neither did:
    the GPU-idle seconds of a shared-GPU box (on CPUs: the time the loop waits on scoring and itself)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.open: dict[str, float] = {}

    def begin(self, key: str, at: float | None = None) -> None:
        self.open[key] = time.perf_counter() if at is None else at

    def end(self, key: str, at: float | None = None) -> None:
        self.spans.append((self.open.pop(key), time.perf_counter() if at is None else at))

    def add(self, span: tuple[float, float]) -> None:
        self.spans.append(span)

    def idle(self, since: float, until: float) -> float:
        """Seconds of [since, until] covered by no span (a phase still running counts as busy until `until`)."""
        spans = sorted((max(a, since), min(b, until)) for a, b in
                       self.spans + [(a, until) for a in list(self.open.values())] if b > since and a < until)
        covered, edge = 0.0, since
        for a, b in spans:
            if b > edge:
                covered += b - max(a, edge)
                edge = b
        self.spans = [(a, b) for a, b in self.spans if b > since]
        return max(0.0, (until - since) - covered)
