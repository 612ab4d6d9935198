"""The `RolloutWorker` Ray actor: a thin shell around one engine, plus splitting a batch across workers."""
from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from typing import Any

from actors.engine import make_engine
from actors.records import Completion, SamplingConfig


class RolloutWorker:
    """Owns one engine. `generate` calls run one at a time; `load_adapter` may arrive while one runs
    (the actor is threaded) and takes effect from the next call."""

    def __init__(self, engine: str = "hf", torch_threads: int = 0, **engine_kwargs: Any) -> None:
        if torch_threads >= 0:
            import torch

            torch.set_num_threads(torch_threads or len(os.sched_getaffinity(0)))
        self.engine = make_engine(engine, **engine_kwargs)
        self._generate_lock = threading.Lock()
        self.last_tokens_per_s = 0.0

    def generate(self, prompts: list[str], n: int, sampling: SamplingConfig,
                 problem_ids: list[str] | None = None) -> list[list[Completion]]:
        with self._generate_lock:
            start = time.perf_counter()
            out = self.engine.generate(prompts, n, sampling, problem_ids)
            tokens = sum(len(c.token_ids) for row in out for c in row)
            self.last_tokens_per_s = tokens / max(time.perf_counter() - start, 1e-9)
            return out

    def load_adapter(self, weights: Any) -> int:
        self.engine.load_adapter(weights)
        return weights.version

    def merge_adapter(self, weights: Any) -> int:
        """Fold an adapter into the engine's base weights (the new reference after SFT)."""
        with self._generate_lock:
            self.engine.merge_adapter(weights)
        return weights.version

    def adapter_version(self) -> int:
        return self.engine.adapter_version

    def close(self) -> None:
        """Delete what the engine wrote outside Ray (vLLM's adapter folders under /dev/shm)."""
        if hasattr(self.engine, "close"):
            self.engine.close()

    def stats(self) -> dict[str, float]:
        return {**self.engine.stats(), "last_tokens_per_s": self.last_tokens_per_s}


def create_rollout_workers(count: int, *, engine: str = "hf", num_gpus: float = 0.0, num_cpus: float = 1.0,
                           name_prefix: str = "rollout", torch_threads: int = 0, **engine_kwargs: Any) -> list:
    """`count` named Ray actors `rollout-0..count-1`, each with a fractional or whole GPU share."""
    import ray

    cls = ray.remote(RolloutWorker)
    return [cls.options(name=f"{name_prefix}-{i}", num_gpus=num_gpus, num_cpus=num_cpus, max_concurrency=4)
            .remote(engine, torch_threads, **engine_kwargs) for i in range(count)]


def generate_across(workers: list, prompts: list[str], n: int, sampling: SamplingConfig,
                    problem_ids: list[str] | None = None, *, chunk_prompts: int = 0) -> list[list[Completion]]:
    """Sample `n` per prompt on the workers, keeping prompt order. Prompts go out in chunks of `chunk_prompts`
    (default: a worker's share split in two) to whichever worker is free, so a slow worker does not hold the
    step. Chunk k is sampled with seed `sampling.seed + k`, whichever worker takes it."""
    import ray

    problem_ids = problem_ids or [str(i) for i in range(len(prompts))]
    size = chunk_prompts or max(1, -(-len(prompts) // (2 * max(1, len(workers)))))
    queue = collections.deque(enumerate(range(0, len(prompts), size)))
    idle, running, parts = list(workers), {}, {}
    while queue or running:
        while queue and idle:
            worker = idle.pop()
            k, i = queue.popleft()
            chunk_sampling = sampling if sampling.seed is None else dataclasses.replace(sampling, seed=sampling.seed + k)
            running[worker.generate.remote(prompts[i : i + size], n, chunk_sampling, problem_ids[i : i + size])] = (k, worker)
        done, _ = ray.wait(list(running), num_returns=1)
        k, worker = running.pop(done[0])
        parts[k] = ray.get(done[0])
        idle.append(worker)
    return [row for k in sorted(parts) for row in parts[k]]


def merge_adapter_everywhere(workers: list, weights: Any) -> list[int]:
    """Every worker folds `weights` into its base weights."""
    import ray

    ref = ray.put(weights)
    return ray.get([w.merge_adapter.remote(ref) for w in workers])


def push_adapter(workers: list, weights: Any) -> list[int]:
    """Send one adapter version (the weights, or the learner's ObjectRef to them) to every worker, one
    object-store copy; return the versions they hold."""
    import ray

    ref = weights if isinstance(weights, ray.ObjectRef) else ray.put(weights)
    return ray.get([w.load_adapter.remote(ref) for w in workers])
