"""The rollout service as one object: `RolloutFleet` owns the job's rollout workers and keeps their number.

Every call that can lose a worker (a stall set aside, a death) ends by replacing it; a new worker gets the
adapters merged into the base weights so far and the last adapter pushed, so it samples from the same policy
as the others. Callers never see or repair the worker list.
"""
from __future__ import annotations

from typing import Any, Callable

from actors.records import EnvSpec, GroupBatch, SamplingConfig
from actors.worker import episodes_across, merge_adapter_everywhere, push_adapter, scores_across


class RolloutFleet:
    """`size` rollout workers made by `spawn(first_index, count) -> list[actor]` (named rollout-<index>)."""

    def __init__(self, size: int, spawn: Callable[[int, int], list], report: Callable[[str], None] = print) -> None:
        self.size, self.spawn, self.report = size, spawn, report
        self.workers: list = spawn(0, size)
        self.spawned = size
        self.everyone: list = list(self.workers)  # every worker ever started (to release the set-aside ones too)
        self.merged: list = []  # adapters folded into the base weights, in order
        self.adapter: Any = None  # the last adapter pushed (weights or the learner's ObjectRef)

    def ready(self) -> list[int]:
        import ray

        return ray.get([w.adapter_version.remote() for w in self.workers])

    def run_episodes(self, problems: list, env: EnvSpec, n: int, sampling: SamplingConfig, *,
                     chunk_prompts: int = 0, stall_seconds: float | None = None) -> list[GroupBatch]:
        try:
            return episodes_across(self.workers, problems, env, n, sampling, chunk_prompts=chunk_prompts,
                                   stall_seconds=stall_seconds, report=self.report)
        finally:
            self.repair()

    def score(self, prompts: list[str], targets: list[str], *, stall_seconds: float | None = None) -> list[float]:
        """Each target's log-probability after its prompt under the policy the workers hold."""
        try:
            return scores_across(self.workers, prompts, targets, stall_seconds=stall_seconds, report=self.report)
        finally:
            self.repair()

    def push(self, weights: Any, *, stall_seconds: float | None = None) -> list[int]:
        """One adapter version to every worker (one object-store copy)."""
        import ray

        self.adapter = weights if isinstance(weights, ray.ObjectRef) else ray.put(weights)
        try:
            return push_adapter(self.workers, self.adapter, stall_seconds=stall_seconds, report=self.report)
        finally:
            self.repair()

    def merge(self, weights: Any) -> None:
        """Every worker folds `weights` into its base weights (the SFT model becomes the base)."""
        self.merged.append(weights)
        merge_adapter_everywhere(self.workers, weights)

    def restart(self, spawn: Callable[[int, int], list]) -> None:
        """Every worker replaced by one from `spawn` (a new base model, such as a full SFT's directory), with no
        adapter merged or pushed yet."""
        self.release()
        self.spawn, self.merged, self.adapter = spawn, [], None
        self.workers = spawn(self.spawned, self.size)
        self.spawned += self.size
        self.everyone = list(self.workers)
        self.ready()

    def versions(self) -> list[int]:
        return self.ready()

    def repair(self) -> None:
        """Kill the workers set aside, start as many fresh ones, bring them to the others' weights."""
        import ray

        missing = self.size - len(self.workers)
        if missing <= 0:
            return
        for actor in self.everyone:
            if actor not in self.workers:
                _kill(actor)
        self.everyone = list(self.workers)
        fresh = self.spawn(self.spawned, missing)
        self.spawned += missing
        self.everyone.extend(fresh)
        for weights in self.merged:
            merge_adapter_everywhere(fresh, weights)
        if self.adapter is not None:
            push_adapter(fresh, self.adapter)
        ray.get([w.adapter_version.remote() for w in fresh])
        self.workers.extend(fresh)
        self.report(f"replaced {missing} rollout worker(s): {', '.join(w._rlvr_name for w in fresh)}")

    def release(self) -> None:
        """Every worker deletes what it wrote outside Ray (vLLM's /dev/shm adapter folders), then dies. Never raises."""
        import ray

        try:
            ray.get([w.close.remote() for w in self.everyone], timeout=30)
        except Exception:  # noqa: BLE001 - a dead or wedged worker has nothing left to delete from this side
            pass
        for actor in self.everyone:
            _kill(actor)


def _kill(actor) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - already dead
        pass
