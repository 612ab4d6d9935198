"""The learner's part of a step: the scored groups it trains on become a `TrainBatch` (GRPO) or the kept
completions of a supervised step (RAFT); returns the learner's `LearnStats` and a reference to the new adapter."""
from __future__ import annotations

from dataclasses import dataclass

from cluster.config import TrainConfig
from cluster.episodes import uses_sampler_logprobs
from cluster.raft import raft_selection
from cluster.records import ScoredStep
from cluster.services import Services, await_learner
from cluster.watchdog import BusyClock
from learner.grpo import has_spread
from learner.learner import LearnStats, TrainBatch


@dataclass
class Learned:
    """What the learner did with a step: its stats and the new adapter (an ObjectRef), both None when no group
    was fit to train on; RAFT also says what it kept."""

    stats: LearnStats | None = None
    weights: object = None
    raft_kept: int | None = None
    raft_kept_groups: float | None = None


def grpo_batch(cfg: TrainConfig, scored: ScoredStep) -> TrainBatch | None:
    """The trained groups' episodes, group by group (groups without spread left out under `drop_zero_spread`)."""
    groups = [g for g in scored.learned if not cfg.drop_zero_spread or has_spread(g.correct)]
    episodes = [e for g in groups for e in g.episodes]
    if not episodes:
        return None
    return TrainBatch(prompt_ids=[e.prompt_token_ids for e in episodes], completion_ids=[e.token_ids for e in episodes],
                      rewards=[e.reward.total for e in episodes], group_size=cfg.group_size,
                      correct=[e.correct for e in episodes], shaping=[e.reward.shaping for e in episodes],
                      sampler_logprobs=[e.sampler_logprobs for e in episodes] if uses_sampler_logprobs(cfg) else None,
                      loss_masks=[e.loss_mask for e in episodes] if any(len(e.turns) > 1 for e in episodes) else None)


def learn(cfg: TrainConfig, svc: Services, scored: ScoredStep, busy: BusyClock, deadline: float | None) -> Learned:
    """A GRPO step on the batch, or RAFT's supervised step on its kept completions; then the adapter is exported."""
    batch = grpo_batch(cfg, scored)
    if batch is None:
        return Learned()
    if cfg.algo == "raft":
        return raft_step(cfg, svc, scored, busy, deadline)
    busy.begin("learn")
    stats = await_learner(svc, svc.learner.step.remote(batch), deadline)
    busy.end("learn")
    return Learned(stats, svc.learner.export_adapter.remote())


def raft_step(cfg: TrainConfig, svc: Services, scored: ScoredStep, busy: BusyClock, deadline: float | None) -> Learned:
    """RAFT: fine-tune on the verified completions `raft_selection` keeps from the trained groups."""
    groups = scored.kept
    kept = raft_selection([[e.verdict for e in g.episodes] for g in groups],
                          [[e.reward.total for e in g.episodes] for g in groups], cfg.raft.keep, cfg.raft.per_problem)
    learned = Learned(raft_kept=len(kept), raft_kept_groups=len({g for g, _ in kept}) / max(len(groups), 1))
    if kept:
        chosen = [groups[g].episodes[j] for g, j in kept]
        busy.begin("learn")
        learned.stats = await_learner(svc, svc.learner.sft_step.remote([e.prompt_token_ids for e in chosen],
                                                                       [e.final_text for e in chosen]), deadline)
        busy.end("learn")
        learned.weights = svc.learner.export_adapter.remote()
    return learned
