"""`VerifierPool`: scoring as a Ray service. Each `verifier-<i>` actor runs `reward.score`, whose SymPy
work goes to sandbox subprocesses the actor owns (killed at the deadline). A batch is split into
chunks across actors; a chunk whose actor dies is retried once on another, then scored `error`.

First cut (issue 3 still open): no elastic resizing, node pinning or ray.util.metrics export yet.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from verifier_pool.reward import RewardBreakdown, RewardWeights, error_breakdown, score


@dataclass(frozen=True)
class ScoreRequest:
    """One completion to score against a gold answer."""

    id: str
    completion: str
    problem: str
    gold: str
    weights: dict = field(default_factory=dict)


def score_chunk(requests: list[ScoreRequest], timeout: float) -> list[dict]:
    """Score requests in this process; never raises for a bad completion."""
    out = []
    for r in requests:
        try:
            out.append(score(r.completion, r.problem, r.gold, RewardWeights.from_dict(r.weights), timeout=timeout).to_dict())
        except Exception:  # noqa: BLE001 - bad weights or a bug on odd input is an `error` verdict, not a lost result
            out.append(error_breakdown("error").to_dict())
    return out


class VerifierActor:
    """Thin Ray shell around `score_chunk`."""

    def __init__(self) -> None:
        self.scored = 0
        self.seconds = 0.0

    def score(self, requests: list[ScoreRequest], timeout: float) -> list[dict]:
        start = time.perf_counter()
        out = score_chunk(requests, timeout)
        self.scored += len(out)
        self.seconds += time.perf_counter() - start
        return out

    def stats(self) -> dict:
        return {"scored": self.scored, "seconds": self.seconds}


class VerifierPool:
    """`size` verifier actors; `score` returns one `RewardBreakdown` per request, in request order."""

    def __init__(self, size: int = 2, *, timeout: float = 2.0, chunk_size: int = 32, num_cpus: float = 1.0,
                 name_prefix: str = "verifier") -> None:
        import ray

        self._cls = ray.remote(VerifierActor)
        self.num_cpus = num_cpus
        self.name_prefix, self.timeout, self.chunk_size = name_prefix, timeout, chunk_size
        self.actors = [self._new_actor(i) for i in range(size)]
        self.restarts = 0

    def _new_actor(self, index: int):
        return self._cls.options(name=f"{self.name_prefix}-{index}", num_cpus=self.num_cpus).remote()

    def score_async(self, requests: list[ScoreRequest]) -> list:
        """Refs, one per chunk, spread round-robin over the actors."""
        chunks = [requests[i : i + self.chunk_size] for i in range(0, len(requests), self.chunk_size)]
        return [(self.actors[k % len(self.actors)], k % len(self.actors), chunk,
                 self.actors[k % len(self.actors)].score.remote(chunk, self.timeout)) for k, chunk in enumerate(chunks)]

    def score(self, requests: list[ScoreRequest]) -> list[RewardBreakdown]:
        import ray
        from ray.exceptions import RayActorError

        results: list[RewardBreakdown] = []
        for actor, index, chunk, ref in self.score_async(requests):
            try:
                rows = ray.get(ref)
            except RayActorError:
                rows = self._retry(actor, index, chunk)
            results.extend(RewardBreakdown.from_dict(r) for r in rows)
        return results

    def _retry(self, dead, index: int, chunk: list[ScoreRequest]) -> list[dict]:
        """Replace a dead actor (once, however many of its chunks failed) and retry the chunk on it."""
        import ray
        from ray.exceptions import RayActorError

        if self.actors[index] is dead:
            self.restarts += 1
            self.actors[index] = self._cls.options(name=f"{self.name_prefix}-{index}-r{self.restarts}",
                                                   num_cpus=self.num_cpus).remote()
        try:
            return ray.get(self.actors[index].score.remote(chunk, self.timeout))
        except RayActorError:
            return [error_breakdown("error").to_dict() for _ in chunk]

    def stats(self) -> dict:
        import ray

        per_actor = ray.get([a.stats.remote() for a in self.actors])
        scored = sum(s["scored"] for s in per_actor)
        seconds = sum(s["seconds"] for s in per_actor)
        return {"actors": len(self.actors), "scored": scored, "restarts": self.restarts,
                "scores_per_actor_second": scored / seconds if seconds else 0.0}
