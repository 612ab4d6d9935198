"""The `RolloutWorker` Ray actor: a thin shell around one engine, plus splitting a batch across workers."""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import Any

from actors.engine import make_engine
from actors.environments import EnvStep, make_env
from actors.records import Completion, EnvSpec, Episode, GroupBatch, SamplingConfig, Turn


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
        self._hang_seconds, self._hang_calls = 0.0, 0
        self._hang_load = 0.0
        self._env_threads: concurrent.futures.ThreadPoolExecutor | None = None

    def hang_next_load(self, seconds: float) -> None:
        """Test hook: the next `load_adapter` call sleeps this long first."""
        self._hang_load = seconds

    def hang_next_generate(self, seconds: float, calls: int = 1) -> None:
        """Test hook: the next `calls` `generate` calls sleep this long first."""
        self._hang_seconds, self._hang_calls = seconds, calls

    def stacks(self) -> str:
        """Every thread's Python stack in this worker (answered while a `generate` call runs: the actor is threaded)."""
        return thread_stacks()

    def generate(self, prompts: list[str], n: int, sampling: SamplingConfig,
                 problem_ids: list[str] | None = None) -> list[list[Completion]]:
        if self._hang_calls:  # test hook: a wedged engine
            self._hang_calls -= 1
            time.sleep(self._hang_seconds)
        with self._generate_lock:
            start = time.perf_counter()
            out = self.engine.generate(prompts, n, sampling, problem_ids)
            tokens = sum(len(c.token_ids) for row in out for c in row)
            self.last_tokens_per_s = tokens / max(time.perf_counter() - start, 1e-9)
            return out

    def score(self, prompts: list[str], targets: list[str]) -> list[float]:
        """Each target's log-probability after its prompt under the current policy (`Engine.score`)."""
        with self._generate_lock:
            return self.engine.score(prompts, targets)

    def run_episodes(self, problems: list, env: EnvSpec, n: int, sampling: SamplingConfig) -> list[GroupBatch]:
        """`n` episodes per problem in environment `env`, turn by turn: a turn is generated for every live episode
        at once, each environment answers, observations join the context (masked from the loss), until every
        episode is done or hits its bound (`max_turns`, `max_episode_tokens`: then `truncated`, and the pool
        scores its last model turn like any other)."""
        envs = [[make_env(env) for _ in range(n)] for _ in problems]
        prompts = [[e.init(p) for e in group][0] for p, group in zip(problems, envs)]  # every env sees its problem
        first = self.generate(prompts, n, sampling, [p.id for p in problems])
        groups = [GroupBatch(p, [Episode(p.id, env.name, prompt, c.prompt_token_ids) for c in row])
                  for p, prompt, row in zip(problems, prompts, first)]
        live = [(episode, e, c) for g, group, row in zip(groups, envs, first)
                for episode, e, c in zip(g.episodes, group, row)]
        for turn in range(1, env.max_turns + 1):
            answers = self._step_envs([(e, c.text) for _, e, c in live])
            live = [(episode, e) for (episode, e, c), answer in zip(live, answers)
                    if not self._record_turn(episode, c, answer, env, turn)]
            if not live or turn == env.max_turns:
                break
            contexts = [episode.prompt_token_ids + episode.token_ids for episode, _ in live]
            next_sampling = sampling if sampling.seed is None else dataclasses.replace(sampling, seed=sampling.seed + 7_777 * turn)
            rows = self.generate(contexts, 1, next_sampling, [episode.problem_id for episode, _ in live])
            live = [(episode, e, row[0]) for (episode, e), row in zip(live, rows)]
        return groups

    def _step_envs(self, pairs: list) -> list[EnvStep]:
        """Every environment's answer to its model turn, in order; run on threads, since an environment may wait on a
        subprocess (a contained program)."""
        if len(pairs) < 2:
            return [e.step(text) for e, text in pairs]
        if self._env_threads is None:
            self._env_threads = concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0)),
                                                                      thread_name_prefix="env-step")
        return list(self._env_threads.map(lambda pair: pair[0].step(pair[1]), pairs))

    def _record_turn(self, episode: Episode, completion: Completion, answer: EnvStep, spec: EnvSpec, turn: int) -> bool:
        """Append a model turn and the environment's answer; True when the episode is over. The bounds are checked
        after each turn: a turn that crosses `max_episode_tokens` is kept, and the episode ends there, truncated."""
        episode.turns.append(Turn("model", completion.text, completion.token_ids, completion.logprobs,
                                  completion.finish_reason, completion.policy_version))
        tokenizer = self.engine.tokenizer
        for text in answer.observations:
            episode.turns.append(Turn("env", text, tokenizer(text, add_special_tokens=False).input_ids))
        episode.info.update(answer.info)
        episode.done = answer.done
        over_tokens = bool(spec.max_episode_tokens) and len(episode.token_ids) >= spec.max_episode_tokens
        episode.truncated = not answer.done and (over_tokens or turn >= spec.max_turns)
        return answer.done or episode.truncated

    def load_adapter(self, weights: Any) -> int:
        if self._hang_load:  # test hook: a wedged weight push
            seconds, self._hang_load = self._hang_load, 0.0
            time.sleep(seconds)
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
        self.engine.close()

    def stats(self) -> dict[str, float]:
        return {**self.engine.stats(), "last_tokens_per_s": self.last_tokens_per_s}


def create_rollout_workers(count: int, *, engine: str = "hf", num_gpus: float = 0.0, num_cpus: float = 1.0,
                           name_prefix: str = "rollout", torch_threads: int = 0, first_index: int = 0,
                           **engine_kwargs: Any) -> list:
    """`count` named Ray actors `rollout-<first_index>...`, each with a fractional or whole GPU share."""
    import ray

    cls = ray.remote(RolloutWorker)
    workers = []
    for i in range(first_index, first_index + count):
        handle = cls.options(name=f"{name_prefix}-{i}", num_gpus=num_gpus, num_cpus=num_cpus,
                             max_concurrency=4).remote(engine, torch_threads, **engine_kwargs)
        handle._rlvr_name = f"{name_prefix}-{i}"
        workers.append(handle)
    return workers


class RolloutStalled(RuntimeError):
    """A chunk of prompts made no progress within its deadline twice, or no worker is left alive."""


def thread_stacks() -> str:
    """Every thread's Python stack in this process, innermost call last."""
    import sys
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(f"--- thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
                     for ident, frame in sys._current_frames().items())


def generate_across(workers: list, prompts: list[str], n: int, sampling: SamplingConfig,
                    problem_ids: list[str] | None = None, *, chunk_prompts: int = 0,
                    stall_seconds: float | None = None, report=print) -> list[list[Completion]]:
    """`n` completions per prompt on the workers, in prompt order (see `dispatch_chunks` for chunks and faults)."""
    problem_ids = problem_ids or [str(i) for i in range(len(prompts))]

    def call(worker, lo: int, hi: int, chunk_sampling: SamplingConfig):
        return worker.generate.remote(prompts[lo:hi], n, chunk_sampling, problem_ids[lo:hi])

    return dispatch_chunks(workers, len(prompts), call, sampling, chunk_prompts=chunk_prompts,
                           stall_seconds=stall_seconds, report=report)


def episodes_across(workers: list, problems: list, env: EnvSpec, n: int, sampling: SamplingConfig, *,
                    chunk_prompts: int = 0, stall_seconds: float | None = None, report=print) -> list[GroupBatch]:
    """`n` episodes per problem in environment `env` on the workers, one `GroupBatch` per problem, in order."""
    def call(worker, lo: int, hi: int, chunk_sampling: SamplingConfig):
        return worker.run_episodes.remote(problems[lo:hi], env, n, chunk_sampling)

    return dispatch_chunks(workers, len(problems), call, sampling, chunk_prompts=chunk_prompts,
                           stall_seconds=stall_seconds, report=report)


def scores_across(workers: list, prompts: list[str], targets: list[str], *, stall_seconds: float | None = None,
                  report=print) -> list[float]:
    """Each target's log-probability after its prompt, scored on the workers, in order."""
    def call(worker, lo: int, hi: int, _sampling: SamplingConfig):
        return worker.score.remote(prompts[lo:hi], targets[lo:hi])

    return dispatch_chunks(workers, len(prompts), call, SamplingConfig(), stall_seconds=stall_seconds, report=report)


def dispatch_chunks(workers: list, count: int, call, sampling: SamplingConfig, *, chunk_prompts: int = 0,
                    stall_seconds: float | None = None, report=print) -> list:
    """Items [0, count) go out in chunks of `chunk_prompts` (default: a worker's share split in two) to whichever
    worker is free, as `call(worker, lo, hi, sampling)`, so a slow worker does not hold the step; the results come
    back in item order. Chunk k is sampled with seed `sampling.seed + k`, whichever worker takes it, so a chunk
    sampled again gives the same output.

    Faults: a chunk whose worker has not answered within `stall_seconds` is reported (worker name and its
    Python stacks through `report`), that worker is set aside for the rest of the call and the chunk goes to
    another one; a chunk that stalls twice raises `RolloutStalled`. A worker that dies mid-call loses its chunk
    to the next free worker. `workers` is left holding the live ones: only the list's owner (`RolloutFleet`)
    passes its own list, and replaces what is missing."""
    import ray
    from ray.exceptions import RayActorError

    size = chunk_prompts or max(1, -(-count // (2 * max(1, len(workers)))))
    queue = collections.deque(enumerate(range(0, count, size)))
    idle, running, parts, stalls = list(workers), {}, {}, collections.Counter()
    while queue or running:
        while queue and idle:
            worker = idle.pop()
            k, i = queue.popleft()
            chunk_sampling = sampling if sampling.seed is None else dataclasses.replace(sampling, seed=sampling.seed + k)
            running[call(worker, i, i + size, chunk_sampling)] = (k, i, worker, time.monotonic())
        if not running:
            raise RolloutStalled(f"no rollout worker left alive for {len(queue)} chunks of prompts")
        oldest = min(started for *_, started in running.values())
        wait = None if stall_seconds is None else max(0.0, oldest + stall_seconds - time.monotonic())
        done, _ = ray.wait(list(running), num_returns=1, timeout=wait)
        if not done:
            _set_aside_stalled(workers, idle, running, stalls, queue, stall_seconds, report)
            continue
        k, i, worker, _ = running.pop(done[0])
        try:
            parts[k] = ray.get(done[0])
        except RayActorError:
            report(f"rollout worker {_name(worker)} died; its chunk {k} goes to another worker")
            if worker in workers:
                workers.remove(worker)
            queue.appendleft((k, i))
            continue
        idle.append(worker)
    return [row for k in sorted(parts) for row in parts[k]]


def _set_aside_stalled(workers: list, idle: list, running: dict, stalls, queue, stall_seconds: float, report) -> None:
    """The oldest running chunk stalled: report its worker's stacks, requeue the chunk (once), set the worker aside."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    ref = min(running, key=lambda r: running[r][3])
    k, i, worker, _ = running.pop(ref)
    stalls[k] += 1
    try:
        stack = ray.get(worker.stacks.remote(), timeout=10)
    except (GetTimeoutError, RayActorError) as exc:
        stack = f"(no stacks: {type(exc).__name__})"
    report(f"rollout stalled: {_name(worker)} gave no answer for chunk {k} in {stall_seconds:.0f}s; "
           f"its stacks:\n{stack}")
    ray.cancel(ref, force=False)
    if stalls[k] > 1:
        raise RolloutStalled(f"chunk {k} of prompts stalled twice (last on {_name(worker)})")
    queue.appendleft((k, i))
    if worker in workers and len(workers) > 1:
        workers.remove(worker)
    else:
        idle.append(worker)


def _name(worker) -> str:
    return getattr(worker, "_rlvr_name", "a rollout worker")


def merge_adapter_everywhere(workers: list, weights: Any) -> list[int]:
    """Every worker folds `weights` into its base weights."""
    import ray

    ref = ray.put(weights)
    return ray.get([w.merge_adapter.remote(ref) for w in workers])


def push_adapter(workers: list, weights: Any, *, stall_seconds: float | None = None, report=print) -> list[int]:
    """Send one adapter version (the weights, or the learner's ObjectRef to them) to every worker, one
    object-store copy; return the versions the workers hold. A worker that has not loaded it within
    `stall_seconds` is reported with its Python stacks, and it and any worker that died are removed from
    `workers` for the caller to replace (`RolloutStalled` when none would be left)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    ref = weights if isinstance(weights, ray.ObjectRef) else ray.put(weights)
    calls = {w.load_adapter.remote(ref): w for w in workers}
    done, late = ray.wait(list(calls), num_returns=len(calls), timeout=stall_seconds)
    versions, lost = [], []
    for r in late:
        try:
            stack = ray.get(calls[r].stacks.remote(), timeout=10)
        except (GetTimeoutError, RayActorError) as exc:
            stack = f"(no stacks: {type(exc).__name__})"
        report(f"weight push stalled: {_name(calls[r])} did not load adapter in {stall_seconds:.0f}s; "
               f"its stacks:\n{stack}")
        lost.append(calls[r])
    for r in done:
        try:
            versions.append(ray.get(r))
        except RayActorError:
            report(f"rollout worker {_name(calls[r])} died while loading an adapter")
            lost.append(calls[r])
    if lost and len(lost) == len(workers):
        raise RolloutStalled(f"no rollout worker loaded the adapter ({', '.join(map(_name, lost))})")
    for worker in lost:
        workers.remove(worker)
    return versions


