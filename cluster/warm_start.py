"""The SFT warm start: supervised steps on worked solutions (generated, or the verified rows of `sft.data`)
before GRPO, then the adapter goes to every rollout worker."""
from __future__ import annotations

import collections
import random

from cluster.config import ConfigError, TrainConfig
from cluster.data import sft_problems
from cluster.services import Services
from cluster.tracking import Tracker
from synthesis.problem import solution_text
from verifier_pool.pool import ScoreRequest
from verifier_pool.reward import Verdict


def warm_start(cfg: TrainConfig, svc: Services, exclude: set[str], tracker: Tracker, echo) -> None:
    """SFT on worked solutions — generated, an equal share from each stage's difficulty and topics (so multi-step
    solutions are seen before the stages that need them), or the verified rows of `sft.data` — then the adapter
    goes to every worker."""
    import ray

    from actors.engine import encode_prompts

    if cfg.sft.data:
        rows = verified_sft_rows(cfg, svc, exclude, tracker, echo)
        prompts = [r.prompt if r.turn else cfg.prompt.format(question=r.prompt) for r in rows]
        targets = [r.target for r in rows]
    else:
        problems = sft_problems(cfg, exclude)
        prompts = [cfg.prompt.format(question=p.question) for p in problems]
        targets = [solution_text(p, cfg.sft.target) for p in problems]
    ray.get(svc.learner.reset_optimizer.remote(cfg.sft.lr, cfg.sft.steps))
    rng = random.Random(cfg.seed)
    prompt_ids = encode_prompts(svc.tokenizer, prompts)
    for step in range(1, cfg.sft.steps + 1):
        idx = rng.sample(range(len(targets)), min(cfg.sft.batch_size, len(targets)))
        stats = ray.get(svc.learner.sft_step.remote([prompt_ids[i] for i in idx], [targets[i] for i in idx]))
        tracker.log_metrics({"sft/loss": stats.loss, "sft/grad_norm": stats.grad_norm}, step=step)
        if step == 1 or step % 10 == 0 or step == cfg.sft.steps:
            echo(f"[sft] step {step}/{cfg.sft.steps}  loss {stats.loss:.3f}  {stats.tokens_per_s:.0f} tok/s")
    svc.fleet.push(ray.get(svc.learner.export_adapter.remote()))


def verified_sft_rows(cfg: TrainConfig, svc: Services, exclude: set[str], tracker: Tracker, echo) -> list:
    """The rows of `sft.data` fit to train on: readable, not a held-out fact, and — for chain-of-thought rows —
    a solution whose own final answer the verifier (lenient policy, in the pool) judges equal to the row's
    answer. Every dropped row is counted by reason, logged (`sft/data_*`) and printed; no usable row is an error."""
    from synthesis.sft_data import load_sft_rows

    try:
        rows, unreadable = load_sft_rows(cfg.sft.data)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"sft.data: {exc}") from exc
    fresh = [r for r in rows if r.turn or r.fact_key() not in exclude]
    cot = [r for r in fresh if not r.turn]
    verdicts = svc.pool.score([ScoreRequest(f"sft/{i}", r.solution, r.prompt, r.answer, {}, "lenient")
                               for i, r in enumerate(cot)])
    dropped = collections.Counter(v.verdict for v in verdicts if v.verdict != Verdict.CORRECT)
    kept = [r for r, v in zip(cot, verdicts) if v.verdict == Verdict.CORRECT] + [r for r in fresh if r.turn]
    counts = {"rows": len(rows) + unreadable, "unreadable": unreadable, "heldout": len(rows) - len(fresh),
              "cot_kept": len(kept) - (len(fresh) - len(cot)), "turns": len(fresh) - len(cot),
              **{f"dropped_{k}": n for k, n in sorted(dropped.items())}}
    tracker.log_metrics({f"sft/data_{k}": float(v) for k, v in counts.items()}, step=0)
    echo("[sft] " + cfg.sft.data + ": " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not kept:
        raise ConfigError(f"sft.data {cfg.sft.data}: no row is fit to train on ({counts})")
    return kept
