"""Which problems a run sees: held-out evaluation problems per stage, the SFT warm start's problems, and the
audit that no training source shares a fact with the held-out side."""
from __future__ import annotations

from cluster.config import TrainConfig
from cluster.schedule import stage_pool
from synthesis.generators import generate_problems
from synthesis.problem import Problem, fact_key


def held_out_problems(cfg: TrainConfig) -> dict[str, list[Problem]]:
    """Per stage, `eval_problems` from the held-out side of the question space, which no training data
    (pretraining, SFT, GRPO) is drawn from."""
    return {s.name: generate_problems(cfg.eval_problems, s.difficulty, topics=s.topics or None,
                                      seed=10_000_019 + cfg.seed * 1000 + i, split="heldout")
            for i, s in enumerate(cfg.stages)}


def sft_problems(cfg: TrainConfig, exclude: set[str]) -> list[Problem]:
    """The SFT warm start's problems: an equal share from each stage's difficulty and topics."""
    share = -(-cfg.sft.problems // len(cfg.stages))
    return [p for i, stage in enumerate(cfg.stages)
            for p in generate_problems(share, stage.difficulty, topics=stage.topics or None,
                                       seed=cfg.seed * 1000 + 900 + i, exclude=exclude, split="train")]


def split_audit(cfg: TrainConfig) -> dict:
    """Facts (see `fact_key`) of every data source of a run — pretraining (for the built-in tiny model), SFT,
    GRPO stages (the fixed schedule's pools; the adaptive curriculum draws from the same `train` side with the
    same exclusions), held-out evaluation — and how many held-out facts each training source shares."""
    from cluster.modelzoo import TINY_MODELS, pretraining_problems

    held_out = held_out_problems(cfg)
    exclude = held_out_facts(held_out)
    sources: dict[str, set[str]] = {}
    if cfg.model.name in TINY_MODELS:
        sources["pretraining"] = {fact_key(p) for p in pretraining_problems(topics=TINY_MODELS[cfg.model.name].topics)}
    if cfg.sft.enabled and cfg.sft.data:
        from synthesis.sft_data import load_sft_rows

        sources["sft"] = {r.fact_key() for r in load_sft_rows(cfg.sft.data)[0] if not r.turn} - exclude  # as trained
    elif cfg.sft.enabled:
        sources["sft"] = {fact_key(p) for p in sft_problems(cfg, exclude)}
    pools = [stage_pool(cfg, i, exclude) for i in range(len(cfg.stages))]
    sources["grpo"] = {fact_key(p) for pool in pools for p in pool}
    if cfg.curriculum.mode == "teacher":
        sources["teacher"] = teacher_facts(cfg, [p for pool in pools for p in pool], exclude)
    return {"heldout_facts": len(exclude), "facts": {k: len(v) for k, v in sources.items()},
            "overlap_with_heldout": {k: len(v & exclude) for k, v in sources.items()}}


def teacher_facts(cfg: TrainConfig, parents: list[Problem], exclude: set[str], per_strategy: int = 200) -> set[str]:
    """Facts of the children the offline teacher makes from `parents` under the run's exclusions, every strategy
    tried on up to `per_strategy` of them: what the audit checks of teacher output."""
    import random

    from cluster.teacher import Pick, operator_child

    rng = random.Random(cfg.seed)
    with_form = [p for p in parents if p.symbolic is not None]
    facts = set()
    for strategy in cfg.teacher.strategies:
        for parent in with_form[:per_strategy]:
            child, _ = operator_child(Pick(parent, "audit", strategy, rng.choice(with_form)), rng, exclude)
            if child is not None:
                facts.add(fact_key(child))
    return facts


def held_out_facts(held_out: dict[str, list[Problem]]) -> set[str]:
    """The fact keys no training problem may have."""
    return {fact_key(p) for problems in held_out.values() for p in problems}
