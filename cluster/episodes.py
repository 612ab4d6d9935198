"""Episodes in, scored groups out: sample G episodes per problem on the rollout fleet, score every final answer in
the verifier pool, and — with a resample budget (DAPO's dynamic sampling) — replace groups whose correctness has
no spread by fresh problems, then pick the groups the learner trains on."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import cluster.environments  # noqa: F401 - registers the environments that need the other services
from actors.environments import ENVIRONMENTS
from actors.fleet import RolloutFleet
from actors.records import EnvSpec, GroupBatch, SamplingConfig
from cluster.config import TrainConfig
from cluster.records import ScoredStep
from cluster.verifier_role import verifier_groups
from learner.grpo import has_spread
from verifier_pool.pool import ScoreRequest, VerifierPool


def env_spec(cfg: TrainConfig) -> EnvSpec:
    """The episodes' environment, its class carried to the workers (which then need not know the registry)."""
    return EnvSpec(name=cfg.rollout.env, template=cfg.prompt, max_turns=cfg.rollout.max_turns,
                   max_episode_tokens=cfg.rollout.max_episode_tokens, cls=ENVIRONMENTS[cfg.rollout.env])


def uses_sampler_logprobs(cfg: TrainConfig) -> bool:
    """Whether the learner needs the sampler's per-token log-probs (for truncated importance sampling): asking
    vLLM for them costs much of its throughput, so only then."""
    if cfg.learner.tis == "auto":
        return cfg.rollout.engine == "vllm" or cfg.async_steps > 0
    return cfg.learner.tis == "on"


def training_sampling(cfg: TrainConfig, seed: int) -> SamplingConfig:
    return SamplingConfig(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                          max_tokens=cfg.rollout.max_tokens, logprobs=uses_sampler_logprobs(cfg), seed=seed,
                          seed_per_request=cfg.rollout.seed_per_request)


def score_groups(pool: VerifierPool, groups: list[GroupBatch], weights: dict, policy: str) -> None:
    """Every episode's final answer judged under the answer `policy` against its problem: sets `episode.reward`."""
    requests = [ScoreRequest(f"{g.problem.id}/{j}", e.final_text, g.problem.question, g.problem.answer, weights,
                             policy, g.problem.form) for g in groups for j, e in enumerate(g.episodes)]
    rewards = iter(pool.score(requests))
    for g in groups:
        for e in g.episodes:
            e.reward = next(rewards)


def sample_and_score(fleet: RolloutFleet, pool: VerifierPool, problems: list, n: int, sampling: SamplingConfig,
                     env: EnvSpec, *, weights: dict | None = None, policy: str = "strict", chunk_prompts: int = 0,
                     stall_seconds: float | None = None) -> ScoredStep:
    """`n` episodes per problem, scored; every group marked trained."""
    start = time.perf_counter()
    groups = fleet.run_episodes(problems, env, n, sampling, chunk_prompts=chunk_prompts, stall_seconds=stall_seconds)
    sampled = time.perf_counter()
    score_groups(pool, groups, weights or {}, policy)
    return ScoredStep(groups, [True] * len(groups), rollout_seconds=sampled - start,
                      score_seconds=time.perf_counter() - sampled, rollout_span=(start, sampled))


def sample_step(cfg: TrainConfig, fleet: RolloutFleet, pool: VerifierPool, problems: list, seed: int,
                replace: Callable[[int, int, set[str]], list] | None = None,
                stall_seconds: float | None = None) -> ScoredStep:
    """One step's groups with whatever adapter the workers hold. With a resample budget, groups without
    correctness spread are replaced by fresh problems from `replace(n, round, taken)` until the batch has
    `batch_size` groups with spread or the budget of extra problems is spent; then the step trains on the groups
    with spread, topped up with spread-less ones, and the shortfall is what it is — never an error."""
    def sample(batch: list, round_seed: int) -> ScoredStep:
        return sample_and_score(fleet, pool, batch, cfg.group_size, training_sampling(cfg, round_seed), env_spec(cfg),
                                weights=cfg.reward, policy=cfg.verifier.answer_policy,
                                chunk_prompts=cfg.rollout.dispatch_prompts, stall_seconds=stall_seconds)

    scored, extra, round_ = sample(problems, seed), 0, 0
    budget = cfg.curriculum.resample_budget if replace is not None else 0
    full = min(len(problems), cfg.batch_size)
    while extra < budget:
        wanted = full - sum(has_spread(g.correct) for g in scored.groups)
        taken = {g.problem.question for g in scored.groups}
        fresh = replace(min(wanted, budget - extra), round_, taken) if wanted > 0 else []
        if not fresh:
            break
        more = sample(fresh, seed + 7919 * (round_ + 1))
        scored = dataclasses.replace(scored, groups=scored.groups + more.groups,
                                     rollout_seconds=scored.rollout_seconds + more.rollout_seconds,
                                     score_seconds=scored.score_seconds + more.score_seconds,
                                     rollout_span=(scored.rollout_span[0], more.rollout_span[1]))
        extra, round_ = extra + len(fresh), round_ + 1
    scored = dataclasses.replace(scored, trained=select_groups(scored.groups, full, resampled=extra > 0),
                                 extra_problems=extra)
    if cfg.rollout.env == "solver-verifier":
        start = time.perf_counter()
        scored.verifier = verifier_groups(fleet, scored.kept, cfg.group_size, training_sampling(cfg, seed + 104_729),
                                          stall_seconds=stall_seconds)
        scored.rollout_seconds += time.perf_counter() - start
        scored.rollout_span = (scored.rollout_span[0], time.perf_counter())
    return scored


def select_groups(groups: list[GroupBatch], full: int, *, resampled: bool) -> list[bool]:
    """Which groups the learner gets: all of them, or after resampling the first `full` with spread first (in
    sampling order), topped up with spread-less ones."""
    if not resampled:
        return [True] * len(groups)
    order = sorted(range(len(groups)), key=lambda i: not has_spread(groups[i].correct))
    chosen = set(order[:full])
    return [i in chosen for i in range(len(groups))]
